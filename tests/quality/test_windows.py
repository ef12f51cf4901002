"""Tests for quality.windows: absolute and relative windows, and the errors a person sees."""

from __future__ import annotations

import datetime as dt

import pytest

from quality.windows import WindowError, parse_window

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11-01T00:00/2026-11-02T00:00", dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 2, tzinfo=dt.UTC)),
        ("-2h/-1h", NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1)),
        ("-7d/now", NOW - dt.timedelta(days=7), NOW),
        ("-90m/-30s", NOW - dt.timedelta(minutes=90), NOW - dt.timedelta(seconds=30)),
        ("2026-11-01/2026-11-01T06:00+01:00", dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 1, 5, tzinfo=dt.UTC)),
        ("2026-10-20T00:00Z/-1w", dt.datetime(2026, 10, 20, tzinfo=dt.UTC), NOW - dt.timedelta(weeks=1)),
    ],
)
def test_valid_windows(text: str, start: dt.datetime, end: dt.datetime) -> None:
    """ISO times (naive means UTC), offsets, 'now' and relative times parse to a UTC range."""
    w = parse_window(text, NOW)
    assert (w.start, w.end) == (start, end)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1h", "START/END"),
        ("-1h/", "START/END"),
        ("yesterday/now", "not a time"),
        ("-1h/-2h", "empty"),
        ("2026-11-02T00:00/2026-11-02T00:00", "empty"),
        ("-2x/now", "not a time"),
    ],
)
def test_invalid_windows(text: str, message: str) -> None:
    """Malformed, unparseable and empty windows raise WindowError with a hint."""
    with pytest.raises(WindowError, match=message):
        parse_window(text, NOW)
