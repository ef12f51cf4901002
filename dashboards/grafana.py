"""Grafana dashboard JSON from the specs, built with grafana-foundation-sdk's typed builders.

The SDK has no ClickHouse query type, so ``ClickHouseQuery`` supplies one in the shape the
grafana-clickhouse-datasource plugin (v4) saves: ``rawSql``, ``editorType: sql``, numeric ``format``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import barchart, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dashboards.model import DATASOURCE_TYPES, DATASOURCE_UIDS, Dashboard, Kind, Panel, Source

# The plugin's Format enum: 0 time series, 1 table.
FORMAT_TIMESERIES = 0
FORMAT_TABLE = 1


class ClickHouseDataquery(variants.Dataquery):
    """A raw-SQL target of the ClickHouse data source plugin."""

    def __init__(self, sql: str, ref_id: str, time_series: bool) -> None:
        self.sql = sql
        self.ref_id = ref_id
        self.time_series = time_series

    def to_json(self) -> dict[str, Any]:
        """The target as Grafana stores it."""
        return {
            "refId": self.ref_id,
            "datasource": datasource_ref(Source.CLICKHOUSE).to_json(),
            "editorType": "sql",
            "rawSql": self.sql,
            "format": FORMAT_TIMESERIES if self.time_series else FORMAT_TABLE,
            "queryType": "timeseries" if self.time_series else "table",
        }


class ClickHouseQuery(cogbuilder.Builder[variants.Dataquery]):
    """Builder for ``ClickHouseDataquery`` in the SDK's fluent style."""

    def __init__(self, sql: str) -> None:
        self._internal = ClickHouseDataquery(sql, "A", True)

    def ref_id(self, ref_id: str) -> Self:
        """Set the target's refId."""
        self._internal.ref_id = ref_id
        return self

    def time_series(self, on: bool) -> Self:
        """Ask the plugin for a time-series (True) or table (False) frame."""
        self._internal.time_series = on
        return self

    def build(self) -> variants.Dataquery:
        """The built target."""
        return self._internal


def datasource_ref(source: Source) -> DataSourceRef:
    """The reference panels use for a data source (uids as ``sovtel dashboards provision`` creates them)."""
    return DataSourceRef(type_val=DATASOURCE_TYPES[source], uid=DATASOURCE_UIDS[source])


def _target(p: Panel) -> cogbuilder.Builder[variants.Dataquery]:
    if p.source is Source.PROMETHEUS:
        q = prometheus.Dataquery().expr(p.query).ref_id("A").range()
        if p.legend:
            q = q.legend_format(p.legend)
        if p.kind is Kind.STAT:
            q = q.instant()
        return q
    return ClickHouseQuery(p.query).time_series(p.kind is Kind.TIMESERIES)


def _panel(p: Panel) -> cogbuilder.Builder[Any]:
    builder: Any
    if p.kind is Kind.TIMESERIES:
        builder = timeseries.Panel().line_width(1).fill_opacity(10).span_nulls(True)
    elif p.kind is Kind.STAT:
        builder = stat.Panel()
    elif p.kind is Kind.BARCHART:
        builder = barchart.Panel()
    else:
        builder = table.Panel()
    builder = (builder.title(p.title).description(p.description).unit(p.unit)
               .datasource(datasource_ref(p.source)).height(p.height).span(p.width).with_target(_target(p)))
    return builder  # type: ignore[no-any-return]


def build(d: Dashboard) -> dict[str, Any]:
    """The dashboard's Grafana JSON model as a dict."""
    b = (dashboard.Dashboard(d.title).uid(d.uid).description(d.description).tags(list(d.tags))
         .time(d.time_from, "now").refresh(d.refresh).timezone("utc").editable())
    for v in d.variables:
        b = b.with_variable(dashboard.ConstantVariable(v.name).label(v.label).description(v.description)
                            .value(v.value))
    for section in d.sections:
        b = b.with_row(dashboard.Row(section.title))
        for p in section.panels:
            b = b.with_panel(_panel(p))
    model: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(b.build()))
    model["annotations"] = {"list": []}
    # The SDK leaves ids at 0 and unset options as null; Grafana wants unique ids and option objects.
    for i, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = i
        if panel.get("options") is None and panel.get("type") != "row":
            panel["options"] = {}
    return model


def to_json(d: Dashboard) -> str:
    """The dashboard as stable, reviewable JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(build(d), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(dashboards: Iterable[Dashboard], out_dir: Path) -> list[Path]:
    """Write ``<uid>.json`` per dashboard into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in dashboards:
        path = out_dir / f"{d.uid}.json"
        path.write_text(to_json(d), encoding="utf-8")
        written.append(path)
    return written
