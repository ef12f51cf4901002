"""Time windows for quality jobs: ``2026-11-01T00:00/2026-11-02T00:00`` or relative ``-2h/-1h`` (UTC)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class WindowError(ValueError):
    """A window could not be parsed or is empty."""


@dataclass(frozen=True)
class Window:
    """A half-open UTC time range [start, end)."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        """Length of the window in seconds."""
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        return f"{self.start.isoformat(timespec='seconds')}/{self.end.isoformat(timespec='seconds')}"


def parse_instant(text: str, now: dt.datetime) -> dt.datetime:
    """One end of a window: ``now``, ``-90m`` (before now) or an ISO date/time (naive means UTC)."""
    s = text.strip()
    if s == "now":
        return now
    m = _RELATIVE.match(s)
    if m:
        return now - dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        value = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(
            f"{text!r} is not a time: use ISO 8601 (2026-11-01T00:00), 'now' or a relative time like -2h, -30m, -7d"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def parse_window(text: str, now: dt.datetime | None = None) -> Window:
    """Parse ``START/END``; raises WindowError with a message fit for the command line."""
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    parts = text.split("/")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise WindowError(
            f"{text!r} is not a window: write START/END, e.g. 2026-11-01T00:00/2026-11-02T00:00 or -2h/-1h"
        )
    start, end = parse_instant(parts[0], current), parse_instant(parts[1], current)
    if end <= start:
        raise WindowError(f"window {text!r} is empty: its end must come after its start")
    return Window(start, end)
