"""`sovtel serve` on the command line: it refuses unsafe or broken set-ups before opening the store,
refuses a store another process holds, warns loudly without authentication, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner, Result

from app.serve import is_loopback, parse_listen, serve_command
from tests.storage.serve.conftest import REPO


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(serve_command, list(args), env=env)


def test_is_mounted_as_sovtel_serve():
    """The command is a click command named `serve` that the sovtel CLI mounts."""
    from app.cli import cli

    assert isinstance(serve_command, click.Command) and serve_command.name == "serve"
    assert cli.commands.get("serve") is serve_command


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:8123", ("127.0.0.1", 8123)), ("[::1]:9000", ("::1", 9000)), ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_parse_listen(listen, expected):
    """HOST:PORT and [v6]:PORT are read."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8123", "host:", ":8123", "host:port", "host:70000"])
def test_parse_listen_rejects(listen):
    """Missing hosts, missing or bad ports are errors."""
    with pytest.raises(ValueError):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
                           ("192.0.2.10", False), ("::", False)],
)
def test_is_loopback(host, loopback):
    """Only loopback addresses count as local."""
    assert is_loopback(host) is loopback


class TestRefusals:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--listen", "0.0.0.0:8123", "--insecure-no-auth"), "not a loopback address"),
            (("--listen", "0.0.0.0:8123", "--insecure-no-auth", "--allow-remote"), "only allowed on a loopback"),
            ((), "no users configured"),
            (("--listen", "nonsense"), "--listen"),
        ],
    )
    def test_unsafe_setups_exit_2(self, tmp_path, args, message):
        """Remote listening without --allow-remote, no-auth off loopback and no users are refused (exit 2)."""
        result = invoke("--store", str(tmp_path / "store"), *args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "store").exists()

    def test_bad_users_file_lists_every_problem(self, tmp_path):
        """A broken users file exits 2 naming each problem."""
        config = tmp_path / "users.yaml"
        config.write_text("users:\n  - {name: a, role: root, token: env:X}\n  - {name: b, role: admin}\nextra: 1\n")
        result = invoke("--store", str(tmp_path / "store"), "--config", str(config))
        assert result.exit_code == 2
        assert "3 error(s)" in result.output and "extra" in result.output

    def test_insecure_with_users_is_ambiguous(self, tmp_path):
        """--insecure-no-auth next to configured users is refused."""
        config = tmp_path / "users.yaml"
        config.write_text("users:\n  - {name: a, role: admin, token: env:SOVTEL_TEST_T}\n")
        result = invoke("--store", str(tmp_path / "store"), "--config", str(config), "--insecure-no-auth")
        assert result.exit_code == 2 and "would ignore the users" in result.output

    def test_unresolvable_secret_exits_2(self, tmp_path):
        """A user whose secret cannot be resolved stops start-up with exit 2 and its name."""
        config = tmp_path / "users.yaml"
        config.write_text("users:\n  - {name: grafana, role: reader, token: env:SOVTEL_TEST_UNSET_TOKEN}\n")
        result = invoke("--store", str(tmp_path / "store"), "--config", str(config), env={})
        assert result.exit_code == 2 and "grafana" in result.output

    def test_store_held_by_another_process_exits_1(self, served):
        """A store already served by another process is refused with exit 1 and a hint."""
        result = subprocess.run(
            [sys.executable, "-m", "app.serve", "--store", str(served.store_dir), "--listen", "127.0.0.1:0",
             "--insecure-no-auth"],
            check=False, capture_output=True, text=True, timeout=120, cwd=REPO, env=served.env,
        )
        assert result.returncode == 1, result.stderr
        assert "another process" in result.stderr


def test_insecure_mode_warns_serves_as_admin_and_stops_on_sigterm(tmp_path):
    """Without auth the server warns, answers unauthenticated requests as admin, and exits 0 on SIGTERM."""
    import http.client

    proc = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "--store", str(tmp_path / "store"), "--listen", "127.0.0.1:0",
         "--insecure-no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        port = int(line.split("127.0.0.1:", 1)[1].split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/", body=b"SELECT currentUser() != '', 1")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"1\t1\n")
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        assert "WARNING: --insecure-no-auth" in err and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
