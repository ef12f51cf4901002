"""``sovtel serve``: ClickHouse's HTTP interface over the embedded store, so several processes
(jobs, Grafana, the pipeline) share one chDB directory; see docs/serve.md.
"""

from storage.serve.cli import serve_command

__all__ = ["serve_command"]
