"""Provisioning with grafana-client: a folder, the two data sources and the dashboards, idempotently
(the job is ``provision_grafana``).

Run it again and nothing is duplicated: the folder and data sources are found by uid and updated,
dashboards are saved with ``overwrite``. Secrets reach Grafana only in ``secureJsonData``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards import grafana
from dashboards.definitions import DASHBOARDS
from dashboards.model import DATASOURCE_TYPES, DATASOURCE_UIDS, Dashboard, Source

FOLDER_UID = "sovtel"
FOLDER_TITLE = "sovtel"


class DataSourceError(ValueError):
    """A data source URL Grafana could not use (wrong scheme, no host, a password inside)."""


class GrafanaError(Exception):
    """Grafana could not be reached, refused a request, or answered something that is not its API.

    The message is one line, fit for a command line: the URL and the reason, never a response body.
    """


def _reason(exc: BaseException) -> str:
    """The innermost operating-system reason of a failed connection ("Connection refused"), else the first
    line of the outermost message, shortened."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    reason = ""
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # HTTP libraries wrap the socket error as a cause, a context, a ``reason`` or an argument.
        linked = [e for e in (current.__cause__, current.__context__, getattr(current, "reason", None),
                              *current.args) if isinstance(e, BaseException)]
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        elif isinstance(current, OSError) and not linked and not reason and current.args:
            reason = str(current.args[0])  # the socket error itself, e.g. a failed name resolution
        todo.extend(linked)
    if reason:
        return reason[:200]
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


@dataclass
class ProvisionReport:
    """What a run did to each object: ``created`` or ``updated``."""

    folder: str = ""
    datasources: dict[str, str] = field(default_factory=dict)
    dashboards: dict[str, str] = field(default_factory=dict)


def clickhouse_datasource(url: str, database: str, password: str | None = None) -> dict[str, Any]:
    """The ClickHouse data source (grafana-clickhouse-datasource v4) for an ``http(s)://user@host:port`` URL;
    DataSourceError if the URL cannot be used."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DataSourceError(f"ClickHouse URL must be http(s)://[user@]host[:port], got {url!r}")
    if parts.password:
        raise DataSourceError("put the ClickHouse password in a secret reference, not in the URL")
    secure = parts.scheme == "https"
    ds: dict[str, Any] = {
        "uid": DATASOURCE_UIDS[Source.CLICKHOUSE],
        "name": "sovtel ClickHouse",
        "type": DATASOURCE_TYPES[Source.CLICKHOUSE],
        "access": "proxy",
        "jsonData": {
            "host": parts.hostname,
            "port": parts.port or (8443 if secure else 8123),
            "protocol": "http",
            "secure": secure,
            "username": parts.username or "default",
            "defaultDatabase": database,
        },
    }
    if password:
        ds["secureJsonData"] = {"password": password}
    return ds


def prometheus_datasource(url: str) -> dict[str, Any]:
    """The Prometheus data source for ``url``; DataSourceError if it is not http(s)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DataSourceError(f"Prometheus URL must be http(s)://…, got {url!r}")
    return {
        "uid": DATASOURCE_UIDS[Source.PROMETHEUS],
        "name": "sovtel Prometheus",
        "type": DATASOURCE_TYPES[Source.PROMETHEUS],
        "access": "proxy",
        "url": url,
        "jsonData": {"httpMethod": "POST"},
    }


def _missing(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def provision(api: Any, dashboards: Iterable[Dashboard], datasources: Iterable[dict[str, Any]],
              folder_uid: str = FOLDER_UID, folder_title: str = FOLDER_TITLE) -> ProvisionReport:
    """Create or update the folder, the data sources and the dashboards; safe to run repeatedly.

    ``api`` is a ``grafana_client.GrafanaApi`` (typed Any: its element methods carry no annotations).
    """
    report = ProvisionReport()
    try:
        folder = api.folder.get_folder(folder_uid)
        if not isinstance(folder, dict):
            raise GrafanaError("the answer to a folder request is not Grafana's API (is the URL Grafana's?)")
        if folder.get("title") != folder_title:
            api.folder.update_folder(folder_uid, title=folder_title, overwrite=True)
        report.folder = "updated"
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(folder_title, uid=folder_uid)
        report.folder = "created"
    for ds in datasources:
        uid = ds["uid"]
        try:
            api.datasource.get_datasource_by_uid(uid)
            api.datasource.update_datasource_by_uid(uid, ds)
            report.datasources[uid] = "updated"
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            api.datasource.create_datasource(ds)
            report.datasources[uid] = "created"
    for d in dashboards:
        try:
            api.dashboard.get_dashboard(d.uid)
            action = "updated"
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            action = "created"
        model = grafana.build(d)
        model.pop("id", None)
        api.dashboard.update_dashboard(
            {"dashboard": model, "folderUid": folder_uid, "overwrite": True, "message": "provisioned by sovtel"}
        )
        report.dashboards[d.uid] = action
    return report


@dataclass(frozen=True)
class ProvisionOptions:
    """Which Grafana to provision, with what: secrets are values here, already resolved from their references."""

    grafana_url: str
    token: str
    # The ClickHouse HTTP URL as Grafana reaches it, e.g. http://reader@ch:8123.
    clickhouse_url: str
    clickhouse_password: str | None = None
    # No Prometheus data source without it.
    prometheus_url: str | None = None
    database: str = "sovtel"
    folder: str = FOLDER_UID
    dashboards: tuple[Dashboard, ...] = DASHBOARDS
    # Per request: a Grafana that does not answer fails the run in seconds, not never.
    timeout_s: float = 10.0

    def datasources(self) -> list[dict[str, Any]]:
        """The data sources to create or update; DataSourceError if a URL cannot be used."""
        sources = [clickhouse_datasource(self.clickhouse_url, self.database, self.clickhouse_password)]
        if self.prometheus_url:
            sources.append(prometheus_datasource(self.prometheus_url))
        return sources


def provision_grafana(options: ProvisionOptions) -> ProvisionReport:
    """Provision the folder (uid and title ``options.folder``), data sources and dashboards in Grafana.

    Nothing is sent when a data source URL is unusable (DataSourceError). A Grafana that cannot be
    reached (within ``timeout_s`` per request), refuses a request or does not answer as Grafana raises
    GrafanaError with one line naming the URL and the reason.
    """
    sources = options.datasources()
    url = options.grafana_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaError(f"Grafana URL must be http(s)://host[:port], got {url!r}")
    try:
        api = GrafanaApi.from_url(url, credential=options.token, timeout=options.timeout_s)
        return provision(api, options.dashboards, sources, folder_uid=options.folder, folder_title=options.folder)
    except GrafanaError as exc:
        raise GrafanaError(f"Grafana at {url}: {exc}") from None
    except GrafanaException as exc:
        status = f"HTTP {exc.status_code}: " if exc.status_code else ""
        message = exc.message if isinstance(exc.message, str) else str(exc.response)
        raise GrafanaError(f"Grafana at {url} refused: {status}{_reason(Exception(message))}") from None
    except OSError as exc:  # niquests' connection errors, timeouts and TLS failures are OSErrors
        raise GrafanaError(f"Grafana at {url} cannot be reached: {_reason(exc)}") from None
    except ValueError as exc:  # a body that is not JSON: not Grafana's API
        raise GrafanaError(f"Grafana at {url} did not answer as Grafana: {_reason(exc)}") from None
