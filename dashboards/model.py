"""The typed description of sovtel's dashboards: panels with their query, shared by export, provisioning and render.

Grafana JSON (dashboards/grafana.py) and the static HTML page (dashboards/render.py) are both
built from these specs, so the page shows exactly the queries Grafana runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.StrEnum):
    """How a panel shows its result."""

    TIMESERIES = "timeseries"
    BARCHART = "barchart"
    STAT = "stat"
    TABLE = "table"


class Source(enum.StrEnum):
    """Which data source answers a panel's query."""

    CLICKHOUSE = "clickhouse"
    PROMETHEUS = "prometheus"


# Data source uids used in the JSON and created by ``sovtel dashboards provision``.
DATASOURCE_UIDS: dict[Source, str] = {
    Source.CLICKHOUSE: "sovtel-clickhouse",
    Source.PROMETHEUS: "sovtel-prometheus",
}
DATASOURCE_TYPES: dict[Source, str] = {
    Source.CLICKHOUSE: "grafana-clickhouse-datasource",
    Source.PROMETHEUS: "prometheus",
}


@dataclass(frozen=True)
class Panel:
    """One panel: a query (ClickHouse SQL with Grafana macros, or PromQL) and how to show it.

    ClickHouse time series return ``time`` first, then an optional string column naming the
    series, then numeric columns; bar charts return a category and a number; tables anything.
    """

    title: str
    kind: Kind
    query: str
    source: Source = Source.CLICKHOUSE
    unit: str = "short"
    description: str = ""
    legend: str = ""
    width: int = 12
    height: int = 8

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError("a panel needs a title")
        if not self.query.strip():
            raise ValueError(f"panel {self.title!r} has no query")
        if not 1 <= self.width <= 24:
            raise ValueError(f"panel {self.title!r}: width must be 1-24 grid columns")


@dataclass(frozen=True)
class Section:
    """A titled group of panels (a Grafana row)."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A dashboard constant the SQL refers to as ``${name}`` (Grafana interpolates it before macros)."""

    name: str
    value: str
    label: str
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: sections of panels, its variables, and a default time range."""

    uid: str
    title: str
    description: str
    sections: tuple[Section, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("sovtel",)
    time_from: str = "now-6h"
    refresh: str = "1m"
    notes: tuple[str, ...] = field(default=())

    @property
    def panels(self) -> tuple[Panel, ...]:
        """Every panel, in order."""
        return tuple(p for s in self.sections for p in s.panels)

    def variable_values(self) -> dict[str, str]:
        """Variable name → default value."""
        return {v.name: v.value for v in self.variables}
