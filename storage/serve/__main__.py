"""``python -m storage.serve``: the same command as ``sovtel serve``."""

from storage.serve.cli import serve_command

if __name__ == "__main__":
    serve_command(prog_name="sovtel serve")
