"""OTLP export requests to Arrow tables of exactly SPAN_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA.

A request is parsed once. Spans and logs take the columnar path: one shallow parse (``views``)
whose records ``wire`` tokenises and checks in lock step. A request that path does not take (an
unusual encoding, or an invalid one) is decoded by the exact per-object path instead, which has
protobuf's full semantics and says what is wrong and where; both produce identical tables.
OTLP/JSON arrives already parsed into a message (``decode_message``). Every failure is a
``DecodeError``.
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

from collectors.otlp import wire
from collectors.otlp.log_columns import log_table, logs_from_messages, logs_from_wire
from collectors.otlp.metric_columns import metric_table
from collectors.otlp.span_columns import span_table, spans_from_messages, spans_from_wire
from collectors.otlp.tables import DecodeError
from sovtel.records import Signal

__all__ = ["DECODERS", "DecodeError", "decode", "decode_logs", "decode_message", "decode_metrics", "decode_traces"]

REQUESTS: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
}


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


def decode_traces(payload: bytes, *, exact: bool = False) -> pa.Table:
    """An ExportTraceServiceRequest (serialized) as a SPAN_SCHEMA table; ``exact`` skips the columnar path."""
    if not exact:
        try:
            return span_table(spans_from_wire(payload))
        except wire.IrregularError:
            pass  # the exact path decodes it, or names what is wrong
    return span_table(spans_from_messages(_parse(Signal.TRACES, payload)))


def decode_logs(payload: bytes, *, exact: bool = False, received_ns: int | None = None) -> pa.Table:
    """An ExportLogsServiceRequest (serialized) as a LOG_SCHEMA table.

    A record without timestamps gets ``received_ns`` (default: now) as its observed time, as the
    collector is the observer.
    """
    now = time.time_ns() if received_ns is None else received_ns
    if not exact:
        try:
            return log_table(logs_from_wire(payload), now)
        except wire.IrregularError:
            pass
    return log_table(logs_from_messages(_parse(Signal.LOGS, payload)), now)


def decode_metrics(payload: bytes) -> pa.Table:
    """An ExportMetricsServiceRequest (serialized) as a METRIC_SCHEMA table, one row per data point."""
    return metric_table(_parse(Signal.METRICS, payload))


def decode_message(signal: Signal, request: Message, *, received_ns: int | None = None) -> pa.Table:
    """An export request already parsed into its protobuf message (e.g. from OTLP/JSON), decoded exactly."""
    if not isinstance(request, REQUESTS[signal]):
        raise TypeError(f"a {signal.value} request must be a {REQUESTS[signal].DESCRIPTOR.name}")
    if signal is Signal.TRACES:
        return span_table(spans_from_messages(request))
    if signal is Signal.LOGS:
        return log_table(logs_from_messages(request), time.time_ns() if received_ns is None else received_ns)
    return metric_table(request)


DECODERS: Mapping[Signal, Callable[[bytes], pa.Table]] = {
    Signal.TRACES: decode_traces,
    Signal.LOGS: decode_logs,
    Signal.METRICS: decode_metrics,
}


def decode(signal: Signal, payload: bytes) -> pa.Table:
    """Decode a serialized export request of ``signal``; raises DecodeError."""
    return DECODERS[signal](payload)
