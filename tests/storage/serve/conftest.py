"""A `sovtel serve` child process per test module (chDB allows one process per store directory),
its users and secrets, and small HTTP and clickhouse-connect helpers to talk to it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import pytest
import yaml

from tests.waiting import DEADLINE_S, wait_until

REPO = Path(__file__).resolve().parents[3]

# name → (role, token or None, password or None); secrets reach the server through env: references.
USERS: dict[str, tuple[str, str | None, str | None]] = {
    "admin": ("admin", "admin-token-0123456789abcdef", "admin-password-1"),
    "writer": ("writer", "writer-token-0123456789abcdef", "writer-password-1"),
    "reader": ("reader", "reader-token-0123456789abcdef", "reader-password-1"),
}


@dataclass
class Response:
    """An HTTP response, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class ServedStore:
    """A running `sovtel serve` child and how to reach it."""

    host: str
    port: int
    store_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    stderr_path: Path
    clients: list[Any] = field(default_factory=list)

    def client(self, user: str = "admin", *, token: bool = False, **kwargs: Any) -> Any:
        """An unmodified clickhouse-connect client logged in as ``user`` (basic auth, or its bearer token)."""
        _role, tok, password = USERS[user]
        auth: dict[str, Any] = {"access_token": tok} if token else {"username": user, "password": password}
        client = clickhouse_connect.get_client(host=self.host, port=self.port, **auth, **kwargs)
        self.clients.append(client)
        return client

    def request(
        self,
        method: str = "POST",
        path: str = "/",
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        user: str | None = "admin",
        chunks: list[bytes] | None = None,
    ) -> Response:
        """One raw HTTP request (basic auth as ``user`` unless None); ``chunks`` sends a chunked body."""
        all_headers = dict(headers or {})
        if user is not None:
            password = USERS[user][2]
            all_headers.setdefault("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        url = path + ("?" + urlencode(params) if params else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            if chunks is not None:
                conn.putrequest(method, url)
                for name, value in {**all_headers, "Transfer-Encoding": "chunked"}.items():
                    conn.putheader(name, value)
                conn.endheaders()
                for chunk in chunks:
                    conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.request(method, url, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def query(self, sql: str, user: str | None = "admin", **params: str) -> Response:
        """POST ``sql`` as the body with URL ``params``."""
        return self.request("POST", "/", params or None, sql.encode(), user=user)

    def audit(self) -> list[dict[str, Any]]:
        """Every record of the server's query log so far."""
        path = self.store_dir / "sovtel-audit" / "queries.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def audit_record(self, query_id: str, timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The query log's record of ``query_id`` (written just after the response, so waited for)."""
        found = wait_until(lambda: [r for r in self.audit() if r["query_id"] == query_id], timeout)
        assert found, f"no audit record for {query_id}"
        return found[0]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def users_yaml(
    limits: Mapping[str, int] | None = None, profiles: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    """The users file text and the environment its env: references need."""
    lines = ["users:"]
    env: dict[str, str] = {}
    for name, (role, token, password) in USERS.items():
        lines += [f"  - name: {name}", f"    role: {role}"]
        if token:
            env[f"SOVTEL_TEST_{name.upper()}_TOKEN"] = token
            lines.append(f"    token: env:SOVTEL_TEST_{name.upper()}_TOKEN")
        if password:
            env[f"SOVTEL_TEST_{name.upper()}_PASSWORD"] = password
            lines.append(f"    password: env:SOVTEL_TEST_{name.upper()}_PASSWORD")
    if limits:
        lines.append("limits:")
        lines += [f"  {k}: {v}" for k, v in limits.items()]
    text = "\n".join(lines) + "\n"
    if profiles:
        text += yaml.safe_dump({"profiles": dict(profiles)}, sort_keys=False)
    return text, env


def start_server(
    root: Path,
    limits: Mapping[str, int] | None = None,
    extra_args: tuple[str, ...] = (),
    profiles: Mapping[str, Any] | None = None,
) -> ServedStore:
    """Start `python -m app.serve` on a store under ``root`` and wait until it listens."""
    text, env_secrets = users_yaml(limits, profiles)
    config = root / "users.yaml"
    config.write_text(text)
    store_dir = root / "store"
    stderr_path = root / "serve.stderr"
    env = {**os.environ, **env_secrets, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "--store", str(store_dir), "--listen", "127.0.0.1:0",
         "--config", str(config), *extra_args],
        stdout=subprocess.PIPE, stderr=stderr_path.open("w"), text=True, env=env, cwd=REPO,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line or proc.poll() is not None:
            break
    if "listening on http://" not in line:
        proc.kill()
        raise RuntimeError(f"sovtel serve did not start: {line!r} {stderr_path.read_text()}")
    port = int(line.split("listening on http://127.0.0.1:", 1)[1].split()[0])
    return ServedStore("127.0.0.1", port, store_dir, env, proc, stderr_path)


DEFAULT_LIMITS = {"max_body_mb": 64, "default_session_timeout_s": 30, "max_session_timeout_s": 30}


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[ServedStore]:
    """One `sovtel serve` per test module, on its own store, with the admin, writer and reader users.

    A module may set ``SERVE_LIMITS`` (the users file's ``limits``) and ``SERVE_PROFILES`` (its
    ``profiles``) for its server.
    """
    limits = getattr(request.module, "SERVE_LIMITS", DEFAULT_LIMITS)
    profiles = getattr(request.module, "SERVE_PROFILES", None)
    with tempfile.TemporaryDirectory(prefix="sovtel-serve-test-") as tmp:
        server = start_server(Path(tmp), limits=limits, profiles=profiles)
        try:
            yield server
        finally:
            server.close()
