"""``sovtel serve``: serve an embedded store over ClickHouse's HTTP interface until SIGTERM or Ctrl-C.
Exit codes follow the ``sovtel`` CLI: 0 stopped cleanly, 1 the store or the port could not be opened, 2 bad input.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import click

from storage.serve.config import ServeConfig, ServeConfigError, load_serve_config

DEFAULT_LISTEN = "127.0.0.1:8123"
# How often an idle service hands memory its queries freed back to the system.
MEMORY_RELEASE_EVERY_S = 5


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); raises ValueError saying what is wrong."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


@click.command("serve")
@click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The embedded store's directory (this process becomes its only owner).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="HOST:PORT to listen on (port 0: any free).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Users file (YAML): users with roles and token/password references, limits.")
@click.option("--allow-remote", is_flag=True, help="Allow listening on a non-loopback address.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Development only: no users, every request is admin; loopback only.")
def serve_command(
    store_dir: Path, listen: str, config_path: Path | None, allow_remote: bool, insecure_no_auth: bool
) -> None:
    """Serve an embedded store over ClickHouse's HTTP interface (clickhouse-connect, Grafana, curl)."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        _fail(2, f"--listen: {exc}")
    try:
        config = load_serve_config(config_path) if config_path is not None else ServeConfig()
    except ServeConfigError as exc:
        _fail(2, "\n  ".join([f"{exc.source}: {len(exc.errors)} error(s)", *exc.errors]))
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        _fail(2, f"refusing to listen on {host}, which is not a loopback address; pass --allow-remote to "
              "serve other machines (and put TLS in front of it)")
    if insecure_no_auth:
        if not loopback:
            _fail(2, "--insecure-no-auth is only allowed on a loopback address")
        if config.users:
            _fail(2, "--insecure-no-auth would ignore the users in --config; remove one of them")
    elif not config.users:
        _fail(2, "no users configured: give --config with a users list (see docs/serve.md), or "
              "--insecure-no-auth for loopback development")

    # Imported here so `sovtel --help` does not load the engine.
    from storage.serve.audit import AuditLog, audit_path
    from storage.serve.auth import Authenticator, AuthSetupError, NoAuthentication
    from storage.serve.engine import Engine, EngineStartError
    from storage.serve.queries import QueryService
    from storage.serve.server import StoreServer

    authenticator: Authenticator | NoAuthentication
    try:
        authenticator = NoAuthentication() if insecure_no_auth else Authenticator(config.users)
    except AuthSetupError as exc:
        _fail(2, "\n  ".join(["cannot load users:", *exc.errors]))
    from storage.serve.config import Role
    from storage.serve.errors import ServeError

    try:
        max_memory = config.limits.max_server_memory_mb
        engine = Engine(store_dir, {role: config.profiles.of(role) for role in Role},
                        max_memory << 20 if max_memory else None)
    except EngineStartError as exc:
        _fail(1, str(exc))
    audit = AuditLog(audit_path(store_dir))
    service = QueryService(engine, authenticator, audit, config.limits, config.profiles)
    try:
        service.check_profiles()
    except ServeError as exc:
        service.close()
        engine.close()
        _fail(2, f"the engine refuses a settings profile: {exc.text}")
    try:
        server = StoreServer(service, host, port, config.limits)
    except OSError as exc:
        service.close()
        engine.close()
        _fail(1, f"cannot listen on {listen}: {exc.strerror or exc}")
    if insecure_no_auth:
        click.echo("sovtel serve: WARNING: --insecure-no-auth: every request runs as admin without a password; "
                   "anyone on this machine can read, change and delete the store and read its files", err=True)
    bound_host, bound_port = server.address
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    click.echo(f"sovtel serve: listening on http://{shown}:{bound_port} (store {store_dir}, "
               f"{len(authenticator.users)} user(s), audit log {audit.path})", err=False)
    sys.stdout.flush()

    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    ticks = 0
    try:
        while not stop.wait(1.0):
            service.sessions.expire()
            ticks += 1
            if ticks % MEMORY_RELEASE_EVERY_S == 0:
                service.release_memory()
    finally:
        server.shutdown()
        if not service.wait_idle(30):
            click.echo("sovtel serve: queries still running after 30 s are cut off", err=True)
        service.close()
        audit.close()
        engine.close()
    click.echo("sovtel serve: stopped", err=True)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sovtel serve: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":  # ``python -m app.serve``: the same command as ``sovtel serve``
    serve_command(prog_name="sovtel serve")
