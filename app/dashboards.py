"""``sovtel dashboards``: export the Grafana JSON, provision Grafana, or render a static HTML page from a store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from dashboards.definitions import UnknownDashboardError, select_dashboards
from dashboards.grafana import export
from dashboards.model import Dashboard
from dashboards.provision import DataSourceError, GrafanaError, ProvisionOptions, provision_grafana
from dashboards.render import open_store_at, render_store
from sovtel.config import SecretError, resolve_secret
from storage.backend import StoreError


def _select(uids: tuple[str, ...]) -> list[Dashboard]:
    try:
        return select_dashboards(uids)
    except UnknownDashboardError as exc:
        raise click.BadParameter(str(exc), param_hint="--dashboard") from None


def _fail(command: str, code: int, message: str) -> NoReturn:
    click.echo(f"sovtel dashboards {command}: {message}", err=True)
    sys.exit(code)


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards as code: export, provision, render."""


@dashboards_group.command("export")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for <uid>.json files.")
@click.option("--dashboard", "uids", multiple=True, help="Only this dashboard uid (repeatable).")
def export_command(out_dir: Path, uids: tuple[str, ...]) -> None:
    """Write the dashboards' Grafana JSON."""
    for path in export(_select(uids), out_dir):
        click.echo(str(path))


@dashboards_group.command("provision")
@click.option("--url", required=True, help="Grafana base URL, e.g. https://grafana.example.eu")
@click.option("--token", required=True, help="Grafana service-account token by reference: env:NAME or file:PATH.")
@click.option("--clickhouse-url", required=True, help="ClickHouse HTTP URL Grafana reaches, e.g. http://reader@ch:8123")
@click.option("--clickhouse-password", help="ClickHouse password by reference (env:NAME or file:PATH).")
@click.option("--prometheus-url", help="Prometheus URL Grafana reaches (no Prometheus data source without it).")
@click.option("--database", default="sovtel", show_default=True, help="Tier database the panels query.")
@click.option("--folder", default="sovtel", show_default=True, help="Folder uid and title.")
@click.option("--dashboard", "uids", multiple=True, help="Only this dashboard uid (repeatable).")
def provision_command(*, url: str, token: str, clickhouse_url: str, clickhouse_password: str | None,
                      prometheus_url: str | None, database: str, folder: str, uids: tuple[str, ...]) -> None:
    """Create or update the folder, data sources and dashboards in Grafana (idempotent)."""
    selected = _select(uids)
    try:
        secret = resolve_secret(token)
        password = resolve_secret(clickhouse_password) if clickhouse_password else None
    except (SecretError, ValueError) as exc:
        _fail("provision", 2, str(exc))
    options = ProvisionOptions(grafana_url=url, token=secret, clickhouse_url=clickhouse_url,
                               clickhouse_password=password, prometheus_url=prometheus_url, database=database,
                               folder=folder, dashboards=tuple(selected))
    try:
        report = provision_grafana(options)
    except DataSourceError as exc:
        _fail("provision", 2, str(exc))
    except GrafanaError as exc:
        _fail("provision", 1, str(exc))
    click.echo(f"folder {folder}: {report.folder}")
    for uid, action in report.datasources.items():
        click.echo(f"data source {uid}: {action}")
    for uid, action in report.dashboards.items():
        click.echo(f"dashboard {uid}: {action}")


@dashboards_group.command("render")
@click.option("--store", required=True, help="Embedded store directory, or a chdb:// or http(s):// ClickHouse DSN.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--database", default="sovtel", show_default=True)
@click.option("--aiact-database", default="aiact", show_default=True)
def render_command(store: str, out_dir: Path, database: str, aiact_database: str) -> None:
    """Render every panel from the store into a self-contained HTML page (OUT/index.html)."""
    if "://" not in store and not Path(store).is_dir():
        _fail("render", 2, f"--store {store}: no such directory")
    try:
        # Fail on a store that does not answer, instead of a page of panels that each say so.
        probe = open_store_at(store, database)
        try:
            probe.connect()
        finally:
            probe.close()
        path = render_store(store, out_dir, database=database, aiact_database=aiact_database)
    except StoreError as exc:
        _fail("render", 1, str(exc))
    except OSError as exc:
        _fail("render", 1, f"{out_dir}: cannot write ({exc.strerror})")
    click.echo(str(path))
