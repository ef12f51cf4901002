"""``sovtel dashboards``: export the Grafana JSON, provision Grafana, or render a static HTML page from a store."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException

from dashboards.definitions import DASHBOARDS, by_uid
from dashboards.grafana import export
from dashboards.model import Dashboard
from dashboards.provision import clickhouse_datasource, prometheus_datasource, provision
from dashboards.render import render_store
from sovtel.config import SecretError, resolve_secret
from storage.backend import StoreError


def _select(uids: tuple[str, ...]) -> list[Dashboard]:
    if not uids:
        return list(DASHBOARDS)
    try:
        return [by_uid(u) for u in uids]
    except KeyError as exc:
        known = ", ".join(d.uid for d in DASHBOARDS)
        raise click.BadParameter(f"no dashboard {exc.args[0]!r} (known: {known})", param_hint="--dashboard") from None


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
        sources = [clickhouse_datasource(clickhouse_url, database, password)]
        if prometheus_url:
            sources.append(prometheus_datasource(prometheus_url))
    except (SecretError, ValueError) as exc:
        click.echo(f"sovtel dashboards provision: {exc}", err=True)
        sys.exit(2)
    api = GrafanaApi.from_url(url, credential=secret)
    try:
        report = provision(api, selected, sources, folder_uid=folder, folder_title=folder)
    except GrafanaException as exc:
        click.echo(f"sovtel dashboards provision: Grafana refused: {exc}", err=True)
        sys.exit(1)
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
    try:
        path = render_store(store, out_dir, database=database, aiact_database=aiact_database)
    except StoreError as exc:
        click.echo(f"sovtel dashboards render: {exc}", err=True)
        sys.exit(1)
    click.echo(str(path))
