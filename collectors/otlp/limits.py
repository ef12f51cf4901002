"""What the OTLP decoder keeps of one record: per-span caps and the times it accepts as sent.

Caps follow the OpenTelemetry SDK's span limits (128 attributes, events and attributes per event):
what lies beyond a cap is dropped and counted (``removed``), so one pathological span costs no more
than 128 of each. A record time that is missing (0) or later than the receive time plus
``max_clock_skew_s`` is replaced by the receive time and the original kept in the
``sovtel.original_time_unix_nano`` attribute (counted as ``timestamp_clamped:zero`` / ``:future``),
because a store's TTL would otherwise drop such a row right after it was acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from sovtel.component import ComponentConfig

# The OpenTelemetry SDK's defaults (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_EVENT_COUNT_LIMIT, ...).
DEFAULT_MAX_ATTRIBUTES = 128
DEFAULT_MAX_EVENTS = 128
DEFAULT_MAX_CLOCK_SKEW_S = 3600.0
NS = 1_000_000_000

# Attribute that keeps a replaced record time (decimal nanoseconds since the epoch, as sent).
ORIGINAL_TIME = "sovtel.original_time_unix_nano"
ORIGINAL_OBSERVED_TIME = "sovtel.original_observed_time_unix_nano"


class RecordLimits(ComponentConfig):
    """Per-record limits of the OTLP receiver (the ``limits`` section of an ``otlp`` receiver)."""

    max_attributes_per_record: int = Field(
        default=DEFAULT_MAX_ATTRIBUTES, ge=1, le=1_000_000,
        description="attributes kept per span or log record, in the order sent; the rest are dropped and counted",
    )
    max_events_per_span: int = Field(
        default=DEFAULT_MAX_EVENTS, ge=0, le=1_000_000,
        description="events kept per span, in the order sent; the rest are dropped and counted",
    )
    max_attributes_per_event: int = Field(
        default=DEFAULT_MAX_ATTRIBUTES, ge=0, le=1_000_000,
        description="attributes kept per span event; the rest are dropped and counted",
    )
    max_clock_skew_s: float = Field(
        default=DEFAULT_MAX_CLOCK_SKEW_S, ge=0, le=366 * 86400,
        description="how far past the receive time a record's time may lie; a later (or missing) time is "
        "replaced by the receive time, the original kept in the sovtel.original_time_unix_nano attribute",
    )


DEFAULT_LIMITS = RecordLimits()


@dataclass(frozen=True)
class Clock:
    """The receive time of one request and the latest record time accepted as sent."""

    now: int
    latest: int

    @classmethod
    def at(cls, received_ns: int, limits: RecordLimits = DEFAULT_LIMITS) -> Clock:
        """The clock of a request received at ``received_ns``."""
        return cls(received_ns, received_ns + int(limits.max_clock_skew_s * NS))
