"""A static, self-contained HTML page of the dashboards: each ClickHouse panel's SQL run on a store, as SVG.

No script, stylesheet or font is fetched: the page opens offline. Prometheus panels are live-only
and appear with their PromQL.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboards.definitions import DASHBOARDS
from dashboards.macros import TimeRange, expand, nice_interval
from dashboards.model import Dashboard, Kind, Panel, Source
from storage.backend import Store, StoreConfig, StoreError

PALETTE = ("#3274d9", "#e0752d", "#56a64b", "#c4162a", "#8f3bb8", "#1f9ea3", "#b8a72e", "#6e6e6e")
MAX_TABLE_ROWS = 50
MAX_BARS = 15
MAX_SERIES = 8
DASH = "\u2013"  # shown for a missing value


@dataclass(frozen=True)
class PanelResult:
    """What a panel's query returned (or why it could not run)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    error: str | None = None


def data_time_range(store: Store, points: int = 120) -> TimeRange:
    """The span of the stored spans and GPU samples (padded a minute each side), or the last 6 hours."""
    bounds: list[datetime] = []
    for table, column in (("spans", "timestamp"), ("gpu_metrics", "timestamp"), ("metrics", "timestamp")):
        try:
            rows = store.query_rows(f"SELECT min({column}), max({column}), count() FROM {table}")
        except StoreError:
            continue
        if rows and rows[0][2]:
            bounds.extend(_aware(v) for v in rows[0][:2])
    if not bounds:
        return TimeRange.last(6 * 3600, points=points)
    start, end = min(bounds) - timedelta(minutes=1), max(bounds) + timedelta(minutes=1)
    return TimeRange(start, end, nice_interval((end - start).total_seconds() / points))


def _aware(v: datetime) -> datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


def run_panel(store: Store, dashboard: Dashboard, panel: Panel, time_range: TimeRange,
              variables: Mapping[str, str] | None = None) -> PanelResult:
    """Expand the panel's macros and run its SQL on ``store`` (errors are returned, not raised)."""
    values = {**dashboard.variable_values(), **(variables or {})}
    sql = expand(panel.query, time_range, values)
    try:
        # DESCRIBE names the columns without running the query; the rows come typed (datetimes stay
        # datetimes, which ClickHouse's Arrow output would turn into integers).
        cols = tuple(str(r[0]) for r in store.query_rows(f"DESCRIBE ({sql})"))
        rows = tuple(store.query_rows(sql))
    except StoreError as exc:
        return PanelResult((), (), sql, str(exc).splitlines()[0])
    return PanelResult(cols, rows, sql)


# ----- formatting -----

def fmt(value: Any, unit: str = "short") -> str:
    """A value as a person reads it, in the panel's Grafana unit."""
    if value is None:
        return DASH
    if isinstance(value, datetime):
        return f"{_aware(value):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return DASH
    if unit == "percentunit":
        return f"{x * 100:.1f}%"
    if unit == "bytes":
        for suffix, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(x) >= size:
                return f"{x / size:.1f} {suffix}"
        return f"{x:.0f} B"
    if unit == "s":
        return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.2f} s"
    if unit == "joule":
        return f"{x / 1000:.2f} kJ" if abs(x) >= 1000 else f"{x:.1f} J"
    suffix = {"watt": " W", "celsius": " °C", "reqps": " req/s"}.get(unit, "")
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M{suffix}"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.1f}k{suffix}"
    if x == int(x):
        return f"{int(x)}{suffix}"
    return f"{x:.3g}{suffix}"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


# ----- charts -----

def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def series_of(result: PanelResult) -> dict[str, list[tuple[float, float]]]:
    """Time series from a result: time first, an optional string column naming series, numeric columns."""
    cols, rows = result.columns, result.rows
    if len(cols) < 2 or not rows:
        return {}
    label_col = 1 if isinstance(rows[0][1], str) else None
    value_cols = [i for i in range(1, len(cols)) if i != label_col and any(_is_number(r[i]) for r in rows)]
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        t = r[0]
        if not isinstance(t, datetime | date):
            continue
        if isinstance(t, datetime):
            ts = _aware(t).timestamp()
        else:
            ts = datetime(t.year, t.month, t.day, tzinfo=UTC).timestamp()
        for i in value_cols:
            v = r[i]
            if not _is_number(v):
                continue
            name = str(r[label_col]) if label_col is not None else cols[i]
            if label_col is not None and len(value_cols) > 1:
                name = f"{name} {cols[i]}"
            out.setdefault(name, []).append((ts, float(v)))
    return dict(list(out.items())[:MAX_SERIES])


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], unit: str, width: int = 560,
               height: int = 220) -> str:
    """An SVG line chart with a y axis in the panel's unit, time labels and a legend."""
    left, right, top, bottom = 64, 10, 10, 24
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, *ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 30, x1 + 30
    if y1 == y0:
        y1 = y0 + (abs(y0) or 1.0)
    y1 += (y1 - y0) * 0.05
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        yy = py(yv)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end" font-size="10">'
                     f"{_esc(fmt(yv, unit))}</text>")
    for xv, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):
        label = datetime.fromtimestamp(xv, UTC).strftime("%H:%M:%S")
        parts.append(f'<text x="{px(xv):.1f}" y="{height - 6}" text-anchor="{anchor}" font-size="10">{label}</text>')
    for (name, points), color in zip(series.items(), PALETTE, strict=False):
        pts = sorted(points)
        title = f"<title>{_esc(name)}</title>"
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">{title}</circle>')
        else:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}">'
                         f"{title}</polyline>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{c}"></i>{_esc(n)}</span>'
        for n, c in zip(series, PALETTE, strict=False)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def bar_chart(result: PanelResult, unit: str, width: int = 560) -> str:
    """Horizontal bars: first string column as category, first numeric column as length."""
    cols, rows = result.columns, result.rows[:MAX_BARS]
    cat = next((i for i in range(len(cols)) if any(isinstance(r[i], str) for r in rows)), 0)
    val = next((i for i in range(len(cols)) if i != cat and any(_is_number(r[i]) for r in rows)), None)
    if val is None:
        return table_html(result, unit)
    bar_h, gap, label_w = 18, 6, 170
    top = max((float(r[val]) for r in rows if _is_number(r[val])), default=0.0) or 1.0
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for k, r in enumerate(rows):
        v = float(r[val]) if _is_number(r[val]) else 0.0
        y = gap + k * (bar_h + gap)
        w = max(1.0, v / top * (width - label_w - 90))
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="11">{_esc(r[cat])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11">{_esc(fmt(v, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stat_html(result: PanelResult, unit: str) -> str:
    """The first number of the first row, large."""
    for v in result.rows[0] if result.rows else ():
        if _is_number(v):
            return f'<div class="stat">{_esc(fmt(v, unit))}</div>'
    return f'<div class="stat">{DASH}</div>'


def table_html(result: PanelResult, unit: str) -> str:
    """The result as an HTML table (first rows only)."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in result.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(fmt(v))}</td>" for v in r) + "</tr>" for r in result.rows[:MAX_TABLE_ROWS]
    )
    more = len(result.rows) - MAX_TABLE_ROWS
    tail = f'<p class="note">… {more} more rows</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def panel_html(panel: Panel, result: PanelResult | None) -> str:
    """One panel card."""
    width = f"calc({panel.width / 24 * 100:.3f}% - 12px)"
    desc = f'<p class="desc">{_esc(panel.description)}</p>' if panel.description else ""
    if panel.source is Source.PROMETHEUS or result is None:
        body = (f'<p class="note">Live from Prometheus (not stored in ClickHouse):</p>'
                f"<pre>{_esc(panel.query)}</pre>")
    elif result.error is not None:
        body = f'<p class="error">Query failed: {_esc(result.error)}</p>'
    elif not result.rows:
        body = '<p class="note">No data in this time range.</p>'
    elif panel.kind is Kind.TIMESERIES:
        series = series_of(result)
        body = line_chart(series, panel.unit) if series else table_html(result, panel.unit)
    elif panel.kind is Kind.BARCHART:
        body = bar_chart(result, panel.unit)
    elif panel.kind is Kind.STAT:
        body = stat_html(result, panel.unit)
    else:
        body = table_html(result, panel.unit)
    sql = "" if result is None else f"<details><summary>SQL</summary><pre>{_esc(result.sql)}</pre></details>"
    return (f'<section class="panel" style="width:{width}" data-panel="{_esc(panel.title)}">'
            f"<h4>{_esc(panel.title)}</h4>{desc}{body}{sql}</section>")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1f1f1f}
header{background:#111217;color:#fff;padding:14px 22px}header p{margin:4px 0 0;color:#c7c7c7;font-size:13px}
nav a{color:#8ab8ff;margin-right:14px}main{padding:10px 16px}
h2{margin:22px 6px 4px}h3{margin:14px 6px 6px;font-size:15px;color:#444;border-bottom:1px solid #ddd}
.grid{display:flex;flex-wrap:wrap;gap:12px;padding:0 6px}
.panel{background:#fff;border:1px solid #dcdee3;border-radius:4px;padding:8px 10px;box-sizing:border-box;
min-width:300px;flex-grow:1}
.panel h4{margin:0 0 4px;font-size:14px}.desc,.note{font-size:12px;color:#666;margin:2px 0 6px}
.error{color:#c4162a;font-size:12px}.stat{font-size:40px;font-weight:600;padding:18px 0;text-align:center}
pre{background:#f6f8fa;padding:6px;font-size:11px;white-space:pre-wrap;overflow-x:auto}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}
.legend{font-size:11px}.key{margin-right:10px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
summary{font-size:11px;color:#666;cursor:pointer}
"""


def render_html(store: Store, dashboards: Iterable[Dashboard] = DASHBOARDS, time_range: TimeRange | None = None,
                variables: Mapping[str, str] | None = None, title: str = "sovtel dashboards") -> str:
    """The whole page: every dashboard, every panel, ClickHouse panels computed on ``store``."""
    dashboards = list(dashboards)
    r = time_range or data_time_range(store)
    nav = " ".join(f'<a href="#{_esc(d.uid)}">{_esc(d.title)}</a>' for d in dashboards)
    out = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
        f"<header><strong>{_esc(title)}</strong>",
        f"<p>{r.start:%Y-%m-%d %H:%M:%S} {DASH} {r.end:%Y-%m-%d %H:%M:%S} UTC, interval {r.interval_s:g} s · "
        f"store {_esc(store.target)} · rendered {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC</p>",
        f"<nav>{nav}</nav></header><main>",
    ]
    for d in dashboards:
        out.append(f'<h2 id="{_esc(d.uid)}">{_esc(d.title)}</h2><p class="desc">{_esc(d.description)}</p>')
        for section in d.sections:
            out.append(f'<h3>{_esc(section.title)}</h3><div class="grid">')
            for p in section.panels:
                result = None if p.source is Source.PROMETHEUS else run_panel(store, d, p, r, variables)
                out.append(panel_html(p, result))
            out.append("</div>")
    out.append("</main></body></html>\n")
    return "".join(out)


def open_store_at(store: Path | str, database: str) -> Store:
    """A store handle for a chDB directory, a ``chdb://`` DSN or a ClickHouse URL, on ``database``."""
    text = str(store)
    cfg = StoreConfig(dsn=text, database=database) if "://" in text else StoreConfig(path=Path(text), database=database)
    return Store.from_config(cfg)


def render_store(store_dir: Path | str, out_dir: Path | str, database: str = "sovtel",
                 aiact_database: str = "aiact", time_range: TimeRange | None = None) -> Path:
    """Render every dashboard from the store at ``store_dir`` into ``out_dir/index.html``; returns that path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store_at(store_dir, database)
    try:
        page = render_html(store, time_range=time_range, variables={"aiact_db": aiact_database})
    finally:
        store.close()
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
