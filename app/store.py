"""The store options other commands share (``--store``/``--url``) and ``sovtel schema migrate|access|cluster``.

``schema migrate`` creates or upgrades the storage schema (``storage.migrate.migrate``) or prints the
SQL it would run. Exit codes follow the ``sovtel`` CLI: 0 success, 1 the store failed, 2 bad input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import click
from pydantic import ValidationError

from storage.access import render_access
from storage.backend import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, Store, StoreConfig, StoreError, client_factory
from storage.clickhouse import RetentionConfig
from storage.cluster import ClusterConfig, render_cluster
from storage.migrate import MigrationError, SchemaSettings, migrate, render


def store_from_url(url: str, user: str | None = None, password_env: str | None = None) -> Store:
    """A store for ``http(s)://[user[:password]@]host[:port]``; ``password_env`` names the password's variable.

    A password in the URL is accepted on the command line (it is the operator's shell, not a
    config file); ``--password-env`` keeps it out of the process list and shell history.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter("expected http://[user[:password]@]host[:port] or https://…", param_hint="--url")
    password: str | None = unquote(parts.password) if parts.password else None
    if password_env is not None:
        if password_env not in os.environ:
            raise click.BadParameter(f"environment variable {password_env} is not set", param_hint="--password-env")
        password = os.environ[password_env]
    secure = parts.scheme == "https"
    config = StoreConfig(
        host=parts.hostname,
        port=parts.port or (DEFAULT_HTTPS_PORT if secure else DEFAULT_HTTP_PORT),
        secure=secure,
        username=user or (unquote(parts.username) if parts.username else None),
    )
    return Store(client_factory(config, password=password or ""), embedded=False, target=config.describe())


class StoreOptionError(click.ClickException):
    """The --store/--url options of a command do not name exactly one usable store (exit 2)."""

    exit_code = 2


def store_from_options(
    store_dir: Path | None, url: str | None, user: str | None = None, password_env: str | None = None
) -> Store:
    """The store a command line names: exactly one of ``--store DIR`` and ``--url URL`` (or a chdb:// DSN)."""
    if (store_dir is None) == (url is None):
        raise StoreOptionError("give exactly one of --store DIR or --url URL")
    if store_dir is not None:
        if not Path(store_dir).is_dir():
            raise StoreOptionError(f"--store {store_dir}: no such directory")
        if user or password_env:
            raise StoreOptionError("--user and --password-env only apply to --url")
        return Store.from_config(StoreConfig(path=Path(store_dir)))
    assert url is not None
    if url.startswith("chdb://"):
        return Store.from_config(StoreConfig(dsn=url))
    try:
        return store_from_url(url, user, password_env)
    except click.BadParameter as exc:
        raise StoreOptionError(exc.format_message()) from exc


F = TypeVar("F", bound=Callable[..., Any])


def store_options(url_help: str, user_help: str = "User name for --url.") -> Callable[[F], F]:
    """The ``--store``, ``--url``, ``--user`` and ``--password-env`` options (``store_from_options``'s
    arguments, as ``store_dir``, ``url``, ``user`` and ``password_env``) of a command."""
    options = [
        click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Embedded store dir."),
        click.option("--url", help=url_help),
        click.option("--user", help=user_help),
        click.option("--password-env", help="Environment variable holding the password for --url."),
    ]

    def apply(command: F) -> F:
        for option in reversed(options):  # as if stacked in this order above the command
            command = option(command)
        return command

    return apply


@click.group("schema")
def schema_group() -> None:
    """Create or upgrade the storage schema (tier tables and the AI-Act store)."""


@schema_group.command("migrate")
@store_options("ClickHouse HTTP URL, e.g. https://admin@clickhouse.example:8443.",
               "User name for --url (overrides one in the URL).")
@click.option("--database", default="sovtel", show_default=True, help="The tier database.")
@click.option("--aiact-database", default="aiact", show_default=True, help="The AI-Act database.")
@click.option("--personal-days", type=int, default=30, show_default=True, help="TTL of personal tables (30-90).")
@click.option("--operational-days", type=int, default=395, show_default=True, help="TTL of operational tables.")
@click.option("--override-reason", help="Why --personal-days is outside 30-90.")
@click.option("--no-aiact", is_flag=True, help="Only the tier database; leave the AI-Act store alone.")
@click.option("--dry-run", is_flag=True, help="Print the SQL instead of running it.")
def migrate_command(
    *,
    store_dir: Path | None,
    url: str | None,
    user: str | None,
    password_env: str | None,
    database: str,
    aiact_database: str,
    personal_days: int,
    operational_days: int,
    override_reason: str | None,
    no_aiact: bool,
    dry_run: bool,
) -> None:
    """Apply pending migrations (idempotent) and list what was applied and skipped."""
    try:
        retention = RetentionConfig(
            personal_days=personal_days, operational_days=operational_days, override_reason=override_reason
        )
    except ValidationError as exc:
        _fail(2, "; ".join(e["msg"] for e in exc.errors()))
    settings = SchemaSettings(
        database=database,
        aiact_database=aiact_database,
        personal_ttl_days=retention.personal_days,
        operational_ttl_days=retention.operational_days,
        aiact_ttl_years=retention.aiact_years,
    )
    problems = settings.problems()
    if problems:
        _fail(2, "; ".join(problems))
    if dry_run:
        try:
            click.echo(render(settings, include_aiact=not no_aiact), nl=False)
        except MigrationError as exc:
            _fail(1, str(exc))
        return
    if (store_dir is None) == (url is None):
        _fail(2, "give exactly one of --store DIR or --url URL (or --dry-run)")
    if store_dir is not None and (user or password_env):
        _fail(2, "--user and --password-env only apply to --url")
    if url is not None:
        store = store_from_url(url, user, password_env)
    else:
        store = Store.from_config(StoreConfig(path=store_dir))
    try:
        report = migrate(store, settings, include_aiact=not no_aiact)
    except (MigrationError, StoreError) as exc:
        _fail(1, str(exc))
    finally:
        store.close()
    for label in report.applied:
        click.echo(f"applied  {label}")
    for label in report.skipped:
        click.echo(f"skipped  {label}")
    for label in report.unknown:
        click.echo(f"warning: {label} is recorded in the store but not shipped with this sovtel (newer schema?)")
    click.echo(f"{len(report.applied)} applied, {len(report.skipped)} already up to date ({store.target})")


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sovtel schema migrate: {message}", err=True)
    sys.exit(code)


@click.command("access")
@click.option("--print", "print_", is_flag=True, required=True, help="Print the SQL (it is never run by sovtel).")
@click.option("--database", default="sovtel", show_default=True, help="The tier database.")
@click.option("--aiact-database", default="aiact", show_default=True, help="The AI-Act database.")
@click.option("--cluster", help="Add ON CLUSTER <name> to every statement.")
def access_command(print_: bool, database: str, aiact_database: str, cluster: str | None) -> None:
    """Print roles, grants and row policies for a ClickHouse server (not for the embedded store)."""
    try:
        text = render_access(SchemaSettings(database=database, aiact_database=aiact_database, cluster=cluster))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(text, nl=False)


@click.command("cluster")
@click.option("--print", "print_", is_flag=True, required=True, help="Print the SQL (nothing is run).")
@click.option("--name", required=True, help="Cluster name (remote_servers).")
@click.option("--database", default="sovtel", show_default=True)
@click.option("--aiact-database", default="aiact", show_default=True)
@click.option("--distributed", is_flag=True, help="Also create Distributed <table>_all tables.")
@click.option("--not-replicated", is_flag=True, help="Plain MergeTree engines (shards without replicas).")
def cluster_command(
    print_: bool, name: str, database: str, aiact_database: str, distributed: bool, not_replicated: bool
) -> None:
    """Print the schema rendered for a ClickHouse cluster (ON CLUSTER, Replicated, Distributed)."""
    try:
        cluster = ClusterConfig(name=name, distributed=distributed, replicated=not not_replicated)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(render_cluster(SchemaSettings(database=database, aiact_database=aiact_database), cluster), nl=False)


schema_group.add_command(access_command)
schema_group.add_command(cluster_command)
