"""Grafana-side query expansion for the ClickHouse data source: template variables, then the plugin's macros.

Follows grafana-clickhouse-datasource (pkg/macros): every macro expands to plain ClickHouse SQL
for a given time range and interval, so the same SQL can be run and tested without Grafana.

| macro | expands to |
|---|---|
| ``$__timeFilter(c)`` | ``c >= toDateTime(FROM) AND c <= toDateTime(TO)`` (Unix seconds) |
| ``$__timeFilter_ms(c)`` | ``c >= fromUnixTimestamp64Milli(FROM_MS) AND c <= fromUnixTimestamp64Milli(TO_MS)`` |
| ``$__dateFilter(c)`` | ``c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')`` |
| ``$__dateTimeFilter(d, t)``, ``$__dt(d, t)`` | ``(date filter on d) AND (time filter on t)`` |
| ``$__timeInterval(c)`` | ``toStartOfInterval(toDateTime(c), INTERVAL N second)``, N = interval (≥ 1 s) |
| ``$__timeInterval_ms(c)`` | ``toStartOfInterval(toDateTime64(c, 3), INTERVAL N millisecond)`` |
| ``$__interval_s`` | N, the interval in whole seconds (≥ 1) |
| ``$__fromTime``, ``$__toTime`` | ``toDateTime(FROM)``, ``toDateTime(TO)`` |
| ``$__fromTime_ms``, ``$__toTime_ms`` | ``fromUnixTimestamp64Milli(FROM_MS)`` … |
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_MACRO = re.compile(r"\$__([A-Za-z_][A-Za-z0-9_]*)")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class MacroError(ValueError):
    """A query uses an unknown macro or variable, or a macro with the wrong arguments."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range and the interval Grafana would pick for it."""

    start: datetime
    end: datetime
    interval_s: float

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time range bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError("time range ends before it starts")

    @classmethod
    def last(cls, seconds: float, now: datetime | None = None, points: int = 200) -> TimeRange:
        """The last ``seconds`` up to ``now``, with an interval giving about ``points`` points per series."""
        end = now or datetime.now(UTC)
        start = datetime.fromtimestamp(end.timestamp() - seconds, UTC)
        return cls(start, end, nice_interval(seconds / points))


_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def nice_interval(seconds: float) -> float:
    """The smallest 'round' interval (1 s, 5 s, 1 min, 5 min …) at least ``seconds`` long."""
    for step in _NICE:
        if step >= seconds:
            return float(step)
    return float(math.ceil(seconds / 86400) * 86400)


def _dt(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _dt64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


def _arity(name: str, args: list[str], n: int) -> None:
    if len(args) != n:
        raise MacroError(f"$__{name} expects {n} argument(s), got {len(args)}")


def _macros(r: TimeRange) -> dict[str, Callable[[list[str]], str]]:
    interval = max(int(r.interval_s), 1)
    interval_ms = max(int(r.interval_s * 1000), 1)

    def time_filter(a: list[str]) -> str:
        _arity("timeFilter", a, 1)
        return f"{a[0]} >= {_dt(r.start)} AND {a[0]} <= {_dt(r.end)}"

    def time_filter_ms(a: list[str]) -> str:
        _arity("timeFilter_ms", a, 1)
        return f"{a[0]} >= {_dt64(r.start)} AND {a[0]} <= {_dt64(r.end)}"

    def date_filter(a: list[str]) -> str:
        _arity("dateFilter", a, 1)
        return f"{a[0]} >= {_date(r.start)} AND {a[0]} <= {_date(r.end)}"

    def date_time_filter(a: list[str]) -> str:
        _arity("dateTimeFilter", a, 2)
        return (f"({a[0]} >= {_date(r.start)} AND {a[0]} <= {_date(r.end)}) AND "
                f"({a[1]} >= {_dt(r.start)} AND {a[1]} <= {_dt(r.end)})")

    def time_interval(a: list[str]) -> str:
        _arity("timeInterval", a, 1)
        return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {interval} second)"

    def time_interval_ms(a: list[str]) -> str:
        _arity("timeInterval_ms", a, 1)
        return f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {interval_ms} millisecond)"

    def constant(value: str, name: str) -> Callable[[list[str]], str]:
        def expand(a: list[str]) -> str:
            _arity(name, a, 0)
            return value

        return expand

    return {
        "timeFilter": time_filter,
        "timeFilter_ms": time_filter_ms,
        "dateFilter": date_filter,
        "dateTimeFilter": date_time_filter,
        "dt": date_time_filter,
        "timeInterval": time_interval,
        "timeInterval_ms": time_interval_ms,
        "interval_s": constant(str(interval), "interval_s"),
        "fromTime": constant(_dt(r.start), "fromTime"),
        "toTime": constant(_dt(r.end), "toTime"),
        "fromTime_ms": constant(_dt64(r.start), "fromTime_ms"),
        "toTime_ms": constant(_dt64(r.end), "toTime_ms"),
    }


MACRO_NAMES: frozenset[str] = frozenset(_macros(TimeRange.last(60)).keys())


def _split_args(text: str) -> list[str]:
    """Arguments split on top-level commas (a column expression may contain parentheses)."""
    args: list[str] = []
    depth, current = 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip() or args:
        args.append(current.strip())
    return args


def interpolate(sql: str, variables: Mapping[str, str]) -> str:
    """Replace ``${name}`` and ``$name`` with variable values (``$__`` macros are left alone)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name.startswith("__"):
            return m.group(0)
        if name not in variables:
            raise MacroError(f"unknown dashboard variable ${name}")
        return variables[name]

    return _VARIABLE.sub(sub, sql)


def expand(sql: str, time_range: TimeRange, variables: Mapping[str, str] | None = None) -> str:
    """The SQL the ClickHouse plugin would send: variables interpolated, then macros expanded."""
    text = interpolate(sql, variables or {})
    table = _macros(time_range)
    out: list[str] = []
    pos = 0
    for m in _MACRO.finditer(text):
        if m.start() < pos:
            continue
        name = m.group(1)
        fn = table.get(name)
        if fn is None:
            raise MacroError(f"unknown macro $__{name} (known: {', '.join(sorted(table))})")
        out.append(text[pos:m.start()])
        end = m.end()
        args: list[str] = []
        if end < len(text) and text[end] == "(":
            depth, i = 0, end
            while i < len(text):
                depth += text[i] == "("
                depth -= text[i] == ")"
                if depth == 0:
                    break
                i += 1
            if depth != 0:
                raise MacroError(f"$__{name}: unbalanced parentheses")
            args = _split_args(text[end + 1:i])
            end = i + 1
        out.append(fn(args))
        pos = end
    out.append(text[pos:])
    return "".join(out)
