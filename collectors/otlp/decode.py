"""OTLP export requests to Arrow tables of exactly SPAN_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA.

A request is parsed once. Spans and logs take the columnar path: one shallow parse (``views``)
whose records ``wire`` tokenises and checks in lock step. A request that path does not take (an
unusual encoding, or an invalid one) is decoded by the exact per-object path instead, which has
protobuf's full semantics and says what is wrong and where; both produce identical tables.
OTLP/JSON arrives already parsed into a message (``decode_parsed``).

``decode_request`` is what receivers use: records that cannot be stored (an id of the wrong length,
a span protobuf cannot read) are left out and reported (``Decoded``, for OTLP partial success), per-
span limits apply and times that are missing or too far ahead are replaced by the receive time.
A request that cannot be parsed at all, or holds no record that can be kept, is a ``DecodeError``.
The older helpers (``decode_traces`` …) keep times as sent and raise DecodeError on any rejection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp import salvage, wire
from collectors.otlp.limits import DEFAULT_LIMITS, Clock, RecordLimits
from collectors.otlp.log_columns import log_table, log_table_from_wire, logs_from_messages
from collectors.otlp.metric_columns import metric_table
from collectors.otlp.span_columns import span_table, span_table_from_wire, spans_from_messages
from collectors.otlp.tables import Decoded, DecodeError, Report, finish
from sovtel.records import Signal

__all__ = [
    "DECODERS",
    "NOUNS",
    "DecodeError",
    "Decoded",
    "decode",
    "decode_logs",
    "decode_message",
    "decode_metrics",
    "decode_parsed",
    "decode_request",
    "decode_traces",
]

REQUESTS: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
}
# What OTLP's partial success counts, per signal.
NOUNS: dict[Signal, str] = {Signal.TRACES: "spans", Signal.LOGS: "log records", Signal.METRICS: "data points"}


def _parse(signal: Signal, payload: bytes) -> Any:
    name = REQUESTS[signal].DESCRIPTOR.name
    try:
        return REQUESTS[signal].FromString(payload)
    except ProtobufDecodeError as exc:
        raise DecodeError(
            f"payload is not a valid protobuf {name} ({exc}); "
            "it may be truncated, not protobuf, or hold invalid UTF-8 in a string field"
        ) from None
    except RecursionError:
        raise DecodeError(f"{name} is nested too deeply") from None


def _parse_or_salvage(signal: Signal, payload: bytes) -> tuple[Any, Report, str | None]:
    """The parsed request, the records already rejected, and the whole request's parse error if any."""
    try:
        return _parse(signal, payload), Report(), None
    except DecodeError as exc:
        error = str(exc)
    try:
        request, report = salvage.request(signal, payload)
    except wire.IrregularError:
        raise DecodeError(error) from None
    return request, report, error


def _done(signal: Signal, table: pa.Table, report: Report, error: str | None) -> Decoded:
    return _checked(signal, finish(table, report), error)


def _checked(signal: Signal, decoded: Decoded, error: str | None) -> Decoded:
    if decoded.rejected and not decoded.table.num_rows:
        # Nothing to keep: the request as a whole is invalid (a 400, not a partial success).
        raise DecodeError(error or decoded.summary(NOUNS[signal]))
    return decoded


def _decode(
    signal: Signal, payload: bytes, limits: RecordLimits, now: int, clock: Clock | None, exact: bool
) -> Decoded:
    if not exact and signal is not Signal.METRICS:
        try:
            if signal is Signal.TRACES:
                return _checked(signal, span_table_from_wire(payload, limits, clock), None)
            return _checked(signal, log_table_from_wire(payload, limits, now, clock), None)
        except wire.IrregularError:
            pass  # the exact path decodes it, or names what is wrong
    request, report, error = _parse_or_salvage(signal, payload)
    return _from_message(signal, request, limits, now, clock, report, error)


def _from_message(
    signal: Signal,
    request: Any,
    limits: RecordLimits,
    now: int,
    clock: Clock | None,
    report: Report,
    error: str | None,
) -> Decoded:
    if signal is Signal.TRACES:
        sp = spans_from_messages(request, limits, report)
        return _done(signal, span_table(sp, limits, clock), sp.report, error)
    if signal is Signal.LOGS:
        lg = logs_from_messages(request, limits, report)
        return _done(signal, log_table(lg, now, clock), lg.report, error)
    return _done(signal, metric_table(request, clock, report), report, error)


def decode_request(
    signal: Signal,
    payload: bytes,
    *,
    limits: RecordLimits = DEFAULT_LIMITS,
    received_ns: int | None = None,
    exact: bool = False,
) -> Decoded:
    """A serialized export request as the records to keep and what was rejected or changed; raises DecodeError.

    ``received_ns`` (default: now) is the receive time that replaces missing or too-late times.
    """
    now = time.time_ns() if received_ns is None else received_ns
    return _decode(signal, payload, limits, now, Clock.at(now, limits), exact)


def decode_parsed(
    signal: Signal,
    request: Message,
    *,
    limits: RecordLimits = DEFAULT_LIMITS,
    received_ns: int | None = None,
    report: Report | None = None,
    error: str | None = None,
    replace_times: bool = True,
) -> Decoded:
    """Like ``decode_request`` for a request already parsed into its message (e.g. from OTLP/JSON).

    ``report`` holds records rejected while parsing (placeholders in ``request``), ``error`` the whole
    request's parse error, given as the DecodeError if no record can be kept. ``replace_times`` False
    keeps times as sent.
    """
    if not isinstance(request, REQUESTS[signal]):
        raise TypeError(f"a {signal.value} request must be a {REQUESTS[signal].DESCRIPTOR.name}")
    now = time.time_ns() if received_ns is None else received_ns
    clock = Clock.at(now, limits) if replace_times else None
    return _from_message(signal, request, limits, now, clock, report or Report(), error)


def strict(signal: Signal, decoded: Decoded) -> pa.Table:
    """The table, or DecodeError if any record was rejected (for callers that take all or nothing)."""
    if decoded.rejected:
        raise DecodeError(decoded.summary(NOUNS[signal]))
    return decoded.table


def decode_traces(payload: bytes, *, exact: bool = False) -> pa.Table:
    """An ExportTraceServiceRequest (serialized) as a SPAN_SCHEMA table, times as sent; ``exact`` skips the
    columnar path. Any span that cannot be kept is a DecodeError."""
    return strict(Signal.TRACES, _decode(Signal.TRACES, payload, DEFAULT_LIMITS, time.time_ns(), None, exact))


def decode_logs(payload: bytes, *, exact: bool = False, received_ns: int | None = None) -> pa.Table:
    """An ExportLogsServiceRequest (serialized) as a LOG_SCHEMA table.

    A record without timestamps gets ``received_ns`` (default: now) as its observed time, as the
    collector is the observer; other times are kept as sent.
    """
    now = time.time_ns() if received_ns is None else received_ns
    return strict(Signal.LOGS, _decode(Signal.LOGS, payload, DEFAULT_LIMITS, now, None, exact))


def decode_metrics(payload: bytes) -> pa.Table:
    """An ExportMetricsServiceRequest (serialized) as a METRIC_SCHEMA table, one row per data point."""
    return strict(Signal.METRICS, _decode(Signal.METRICS, payload, DEFAULT_LIMITS, time.time_ns(), None, True))


def decode_message(signal: Signal, request: Message, *, received_ns: int | None = None) -> pa.Table:
    """An export request already parsed into its protobuf message (e.g. from OTLP/JSON), decoded exactly,
    times as sent; any record that cannot be kept is a DecodeError."""
    if not isinstance(request, REQUESTS[signal]):
        raise TypeError(f"a {signal.value} request must be a {REQUESTS[signal].DESCRIPTOR.name}")
    now = time.time_ns() if received_ns is None else received_ns
    return strict(signal, _from_message(signal, request, DEFAULT_LIMITS, now, None, Report(), None))


DECODERS: Mapping[Signal, Callable[[bytes], pa.Table]] = {
    Signal.TRACES: decode_traces,
    Signal.LOGS: decode_logs,
    Signal.METRICS: decode_metrics,
}


def decode(signal: Signal, payload: bytes) -> pa.Table:
    """Decode a serialized export request of ``signal``; raises DecodeError."""
    return DECODERS[signal](payload)
