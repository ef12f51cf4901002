"""Tests for dashboards.macros: the ClickHouse plugin's macros and Grafana variables expand as documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.macros import MACRO_NAMES, MacroError, TimeRange, expand, interpolate, nice_interval

START = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 24, 9, 30, 0, 123000, tzinfo=UTC)
RANGE = TimeRange(START, END, 30.0)
F, T = int(START.timestamp()), int(END.timestamp())
FM, TM = int(START.timestamp() * 1000), int(END.timestamp() * 1000)


@pytest.mark.parametrize(("sql", "expected"), [
    ("$__timeFilter(timestamp)", f"timestamp >= toDateTime({F}) AND timestamp <= toDateTime({T})"),
    ("$__timeFilter_ms(ts)", f"ts >= fromUnixTimestamp64Milli({FM}) AND ts <= fromUnixTimestamp64Milli({TM})"),
    ("$__dateFilter(day)", "day >= toDate('2026-11-24') AND day <= toDate('2026-11-24')"),
    ("$__dateTimeFilter(d, t)",
     f"(d >= toDate('2026-11-24') AND d <= toDate('2026-11-24')) AND (t >= toDateTime({F}) AND t <= toDateTime({T}))"),
    ("$__dt(d, t)",
     f"(d >= toDate('2026-11-24') AND d <= toDate('2026-11-24')) AND (t >= toDateTime({F}) AND t <= toDateTime({T}))"),
    ("$__timeInterval(timestamp)", "toStartOfInterval(toDateTime(timestamp), INTERVAL 30 second)"),
    ("$__timeInterval_ms(timestamp)", "toStartOfInterval(toDateTime64(timestamp, 3), INTERVAL 30000 millisecond)"),
    ("$__interval_s", "30"),
    ("$__fromTime", f"toDateTime({F})"),
    ("$__toTime", f"toDateTime({T})"),
    ("$__fromTime_ms", f"fromUnixTimestamp64Milli({FM})"),
    ("$__toTime_ms", f"fromUnixTimestamp64Milli({TM})"),
    ("$__timeFilter(toStartOfMinute(t))",
     f"toStartOfMinute(t) >= toDateTime({F}) AND toStartOfMinute(t) <= toDateTime({T})"),
])
def test_macro_expansion(sql: str, expected: str) -> None:
    """Each macro expands exactly as grafana-clickhouse-datasource's pkg/macros does."""
    assert expand(sql, RANGE) == expected


def test_every_documented_macro_is_known() -> None:
    """The expander knows the plugin's twelve macro names."""
    assert {"timeFilter", "timeFilter_ms", "dateFilter", "dateTimeFilter", "dt", "timeInterval", "timeInterval_ms",
            "interval_s", "fromTime", "toTime", "fromTime_ms", "toTime_ms"} == MACRO_NAMES


def test_interval_below_one_second_is_one_second() -> None:
    """Like the plugin, $__timeInterval and $__interval_s never go below one second."""
    r = TimeRange(START, START + timedelta(seconds=10), 0.2)
    assert expand("$__interval_s", r) == "1"
    assert "INTERVAL 1 second" in expand("$__timeInterval(t)", r)


@pytest.mark.parametrize(("sql", "variables", "expected"), [
    ("x * ${price}", {"price": "2.5"}, "x * 2.5"),
    ("FROM $db.ledger", {"db": "aiact"}, "FROM aiact.ledger"),
    ("$__interval_s", {}, "$__interval_s"),
])
def test_variables_are_interpolated_before_macros(sql: str, variables: dict, expected: str) -> None:
    """${name} and $name take the dashboard variable's value; $__ macros are left for the macro step."""
    assert interpolate(sql, variables) == expected


@pytest.mark.parametrize(("sql", "variables"), [
    ("$__nosuchMacro(x)", {}),
    ("$__timeFilter(a, b)", {}),
    ("$__timeFilter()", {}),
    ("$__dateTimeFilter(a)", {}),
    ("$__interval_s(x)", {}),
    ("$__timeFilter(a", {}),
    ("x = ${missing}", {}),
])
def test_bad_queries_are_refused(sql: str, variables: dict) -> None:
    """Unknown macros or variables, wrong argument counts and unbalanced parentheses raise MacroError."""
    with pytest.raises(MacroError):
        expand(sql, RANGE, variables)


@pytest.mark.parametrize(("seconds", "expected"), [(0.3, 1), (1, 1), (7, 10), (61, 120), (3000, 3600),
                                                   (200_000, 259_200)])
def test_nice_interval(seconds: float, expected: float) -> None:
    """Intervals round up to the next 'nice' step (1 s, 10 s, 2 min, 1 h … whole days)."""
    assert nice_interval(seconds) == expected


@pytest.mark.parametrize(("start", "end"), [
    (datetime(2026, 1, 1), datetime(2026, 1, 2)),
    (END, START),
])
def test_invalid_time_ranges(start: datetime, end: datetime) -> None:
    """Naive datetimes and ranges that end before they start are refused."""
    with pytest.raises(ValueError):
        TimeRange(start, end, 1.0)
