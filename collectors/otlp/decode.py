"""OTLP export requests (protobuf bytes) to Arrow tables of exactly SPAN_SCHEMA, LOG_SCHEMA, METRIC_SCHEMA.

Spans and logs take a columnar fast path (``views`` + ``wire``) and fall back to the exact
per-object path for encodings it does not handle; both produce identical tables. Every failure is
a ``DecodeError`` whose message says what is wrong and where.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors import semconv
from collectors.otlp import views, wire
from collectors.otlp.attributes import (
    Attributes,
    Candidate,
    IntArray,
    Projection,
    Values,
    attributes_from_messages,
    project,
    resolve,
    values_from_messages,
)
from sovtel.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, TIMESTAMP, Signal

INT64_MAX = np.uint64(2**63 - 1)
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
_REQUEST_NAMES = {
    Signal.TRACES: "ExportTraceServiceRequest",
    Signal.LOGS: "ExportLogsServiceRequest",
    Signal.METRICS: "ExportMetricsServiceRequest",
}
# Columns a record may set itself, overriding its resource's value (see semconv).
_RECORD_OVER_RESOURCE = ("tenant_id", "tier")


class DecodeError(ValueError):
    """The payload is not a valid OTLP export request; the message says what is wrong and where."""


def _parse(cls: Any, payload: bytes, signal: Signal) -> Any:
    try:
        return cls.FromString(payload)
    except ProtobufDecodeError as exc:
        raise DecodeError(
            f"payload is not a valid protobuf {_REQUEST_NAMES[signal]} ({exc}); "
            "it may be truncated, not protobuf, or hold invalid UTF-8 in a string field"
        ) from None
    except RecursionError:
        raise DecodeError(f"{_REQUEST_NAMES[signal]} is nested too deeply") from None


class _Locator:
    """Maps a flat record index back to its place in the request, for error messages."""

    def __init__(self, outer: str, middle: str, inner: str) -> None:
        self.names = (outer, middle, inner)
        self.blocks: list[tuple[int, int, int]] = []  # (outer index, middle index, records)

    def add(self, outer: int, middle: int, records: int) -> None:
        self.blocks.append((outer, middle, records))

    def __call__(self, index: int) -> str:
        for outer, middle, records in self.blocks:
            if index < records:
                a, b, c = self.names
                return f"{a}[{outer}].{b}[{middle}].{c}[{index}]"
            index -= records
        return f"record {index}"


def _nanos(values: Iterable[int] | npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    return np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.uint64).reshape(-1)


def _timestamps(nanos: npt.NDArray[np.uint64]) -> pa.Array:
    # uint64 nanoseconds past 2262 do not fit a timestamp; clamp rather than wrap to the past.
    return pa.array(np.minimum(nanos, INT64_MAX).astype(np.int64), TIMESTAMP)


def _names(codes: IntArray, names: tuple[str, ...]) -> pa.Array:
    arr = np.asarray(codes, dtype=np.int64).reshape(-1)
    known = (arr >= 0) & (arr < len(names))
    # An enum value from a newer protocol version reads as the default name rather than failing.
    return pa.array(names, pa.string()).take(pa.array(np.where(known, arr, 0)))


def _columns(
    n: int,
    schema: pa.Schema,
    projections: Iterable[Projection],
    only: Iterable[str] | None = None,
) -> dict[str, pa.Array]:
    merged: dict[str, list[Candidate]] = {}
    for proj in projections:
        for col, cands in proj.candidates.items():
            merged.setdefault(col, []).extend(cands)
    cols = merged if only is None else {c: merged.get(c, []) for c in only}
    return {col: resolve(n, col, cands, schema.field(col).type) for col, cands in cols.items()}


def _empty_nested(n: int, t: pa.DataType) -> pa.Array:
    """n empty lists or maps, built from offsets (pa.array of n Python lists is far slower)."""
    offsets = pa.array(np.zeros(n + 1, np.int32))
    if pa.types.is_map(t):
        return pa.MapArray.from_arrays(offsets, pa.array([], t.key_type), pa.array([], t.item_type), type=t)
    return pa.ListArray.from_arrays(offsets, pa.array([], t.value_type), type=t)


def _default(column: pa.Array, field: pa.Field) -> pa.Array:
    """Fill nulls with the field's default (empty, zero); nullable fields keep their nulls."""
    if field.nullable or column.null_count == 0:
        return column
    t = field.type
    if pa.types.is_list(t):
        # coalesce on nested types is slow; rebuild the offsets with nulls as empty lists instead.
        lengths = pc.list_value_length(column).fill_null(0).to_numpy()
        offsets = np.zeros(len(column) + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(column), type=t)
    if pa.types.is_string(t):
        return pc.coalesce(column, pa.scalar("", t))
    return pc.coalesce(column, pa.scalar(0, t))


def _table(schema: pa.Schema, n: int, columns: Mapping[str, pa.Array]) -> pa.Table:
    arrays = []
    for f in schema:
        col = columns.get(f.name)
        if col is None:
            nested = pa.types.is_list(f.type) or pa.types.is_map(f.type)
            col = _empty_nested(n, f.type) if nested and not f.nullable else pa.nulls(n, f.type)
        elif col.type != f.type:
            col = col.cast(f.type)
        arrays.append(_default(col, f))
    return pa.Table.from_arrays(arrays, schema=schema)


class _Resources:
    """Resource-level columns, decoded once per resource and spread to its records by index."""

    def __init__(
        self, schema: pa.Schema, resources: Sequence[Sequence[KeyValue]], records_per_resource: list[int]
    ) -> None:
        attrs = attributes_from_messages(resources)
        proj = project(attrs, semconv.RESOURCE_ATTRIBUTES)
        self.index = pa.array(np.repeat(np.arange(len(resources), dtype=np.int64), records_per_resource))
        self.attributes = proj.rest.take(self.index)
        self.columns = {
            c: a.take(self.index)
            for c, a in _columns(len(resources), schema, [proj], ("service_name", "node", "tenant_id", "tier")).items()
        }

    def under(self, record_columns: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        """Record-level tenant and tier where present, the resource's otherwise."""
        out = dict(self.columns)
        for c in _RECORD_OVER_RESOURCE:
            if c in record_columns and record_columns[c].null_count < len(record_columns[c]):
                out[c] = pc.coalesce(record_columns[c], self.columns[c])
        return out


def _hex_from_messages(ids: Sequence[bytes], *, width: int, optional: bool, field: str, locate: _Locator) -> pa.Array:
    """Ids as lower-case hex strings, built in one pass; a wrong length is a DecodeError naming the record."""
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    _check_id_lengths(lengths, width=width, optional=optional, field=field, locate=locate)
    return _hex_array(lengths, b"".join(ids).hex().encode("ascii"))


def _check_id_lengths(lengths: IntArray, *, width: int, optional: bool, field: str, locate: _Locator) -> None:
    bad = lengths != width
    if optional:
        bad &= lengths != 0
    if bad.any():
        i = int(np.argmax(bad))
        raise DecodeError(f"{locate(i)}.{field}: must be {width} bytes, got {int(lengths[i])}")


def _hex_array(lengths: IntArray, text: bytes) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths * 2, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _hex_from_wire(
    b: wire.Buffer, f: wire.Fields, number: int, n: int, *, width: int, optional: bool, field: str, locate: _Locator
) -> pa.Array:
    sel = f.singular(number, wire.WT_LEN)
    lengths = np.zeros(n, np.int64)
    lengths[f.rec[sel]] = f.end[sel] - f.start[sel]
    _check_id_lengths(lengths, width=width, optional=optional, field=field, locate=locate)
    present = sel[f.end[sel] > f.start[sel]]
    return _hex_array(lengths, b.hex(f.start[present], width))


def _spread(n: int, rows: IntArray, values: pa.Array) -> pa.Array:
    """``values`` placed at ``rows`` of an n-row column, null elsewhere."""
    if len(rows) == n:
        return values
    index = np.full(n, -1, np.int64)
    index[rows] = np.arange(len(rows), dtype=np.int64)
    return values.take(pa.array(index, mask=index < 0))


def _spread_ints(n: int, rows: IntArray, values: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
    out = np.zeros(n, dtype)
    out[rows] = values
    return out


class _Records:
    """What both decode paths extract from a request, before the shared table assembly."""

    def __init__(self, locate: _Locator) -> None:
        self.locate = locate
        self.resources: list[Sequence[KeyValue]] = []
        self.per_resource: list[int] = []
        self.n = 0


# ---------------------------------------------------------------------------------------- traces


class _Spans(_Records):
    """Span columns as extracted, before typed-column projection."""

    trace_id: pa.Array
    span_id: pa.Array
    parent_span_id: pa.Array
    name: pa.Array
    kind: IntArray
    start: npt.NDArray[np.uint64]
    end: npt.NDArray[np.uint64]
    status_code: IntArray
    status_message: pa.Array
    attributes: Attributes
    events: list[Any]
    event_spans: IntArray


def decode_traces(payload: bytes, *, exact: bool = False) -> pa.Table:
    """An ExportTraceServiceRequest (serialized) as a SPAN_SCHEMA table; ``exact`` skips the fast path."""
    if not exact:
        # Full protobuf validation without per-attribute objects; wire checks the attributes.
        _parse(views.TraceRequestView, payload, Signal.TRACES)
        try:
            return _span_table(_spans_from_wire(payload))
        except wire.IrregularError:
            pass
    return _span_table(_spans_from_messages(_parse(ExportTraceServiceRequest, payload, Signal.TRACES)))


def _spans_from_wire(payload: bytes) -> _Spans:
    req = views.TraceRecordsView.FromString(payload)
    out = _Spans(_Locator("resourceSpans", "scopeSpans", "spans"))
    parts: list[bytes] = []
    for r, rs in enumerate(req.resource_spans):
        out.resources.append(rs.resource.attributes)
        count = 0
        for s, ss in enumerate(rs.scope_spans):
            spans = ss.spans
            out.locate.add(r, s, len(spans))
            parts.extend(spans)
            count += len(spans)
        out.per_resource.append(count)
    n = out.n = len(parts)
    b = wire.Buffer(parts)
    f = wire.scan(b.array, b.start, b.end)
    out.trace_id = _hex_from_wire(b, f, 1, n, width=16, optional=False, field="traceId", locate=out.locate)
    out.span_id = _hex_from_wire(b, f, 2, n, width=8, optional=False, field="spanId", locate=out.locate)
    out.parent_span_id = _hex_from_wire(b, f, 4, n, width=8, optional=True, field="parentSpanId", locate=out.locate)
    sel = f.singular(5, wire.WT_LEN)
    out.name = _spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
    sel = f.singular(6, wire.WT_VARINT)
    out.kind = _spread_ints(n, f.rec[sel], f.value[sel].view(np.int64), np.int64)
    sel = f.singular(7, wire.WT_FIXED64)
    out.start = _spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(8, wire.WT_FIXED64)
    out.end = _spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(15, wire.WT_LEN)
    status_rows = f.rec[sel]
    st = wire.scan(b.array, f.start[sel], f.end[sel])
    code = st.singular(3, wire.WT_VARINT)
    out.status_code = _spread_ints(n, status_rows[st.rec[code]], st.value[code].view(np.int64), np.int64)
    msg = st.singular(2, wire.WT_LEN)
    out.status_message = _spread(n, status_rows[st.rec[msg]], b.strings(st.start[msg], st.end[msg]))
    sel = f.where(9, wire.WT_LEN)
    counts = np.bincount(f.rec[sel], minlength=n).astype(np.int64)
    out.attributes = wire.keyvalues(b, f.start[sel], f.end[sel], counts)
    sel = f.where(11, wire.WT_LEN)
    out.event_spans = f.rec[sel]
    out.events = [Span.Event.FromString(blob) for blob in b.binary(f.start[sel], f.end[sel]).to_pylist()]
    return out


def _spans_from_messages(req: Any) -> _Spans:
    out = _Spans(_Locator("resourceSpans", "scopeSpans", "spans"))
    trace_ids: list[bytes] = []
    span_ids: list[bytes] = []
    parent_ids: list[bytes] = []
    names: list[str] = []
    kinds: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    codes: list[int] = []
    messages: list[str] = []
    groups: list[Any] = []
    events: list[Any] = []
    event_spans: list[int] = []
    i = 0
    for r, rs in enumerate(req.resource_spans):
        out.resources.append(rs.resource.attributes)
        count = 0
        for s, ss in enumerate(rs.scope_spans):
            out.locate.add(r, s, len(ss.spans))
            count += len(ss.spans)
            for sp in ss.spans:
                trace_ids.append(sp.trace_id)
                span_ids.append(sp.span_id)
                parent_ids.append(sp.parent_span_id)
                names.append(sp.name)
                kinds.append(sp.kind)
                starts.append(sp.start_time_unix_nano)
                ends.append(sp.end_time_unix_nano)
                codes.append(sp.status.code)
                messages.append(sp.status.message)
                groups.append(sp.attributes)
                events.extend(sp.events)
                event_spans.extend([i] * len(sp.events))
                i += 1
        out.per_resource.append(count)
    out.n = i
    out.trace_id = _hex_from_messages(trace_ids, width=16, optional=False, field="traceId", locate=out.locate)
    out.span_id = _hex_from_messages(span_ids, width=8, optional=False, field="spanId", locate=out.locate)
    out.parent_span_id = _hex_from_messages(parent_ids, width=8, optional=True, field="parentSpanId", locate=out.locate)
    out.name = pa.array(names, pa.string())
    out.kind = np.asarray(kinds, np.int64)
    out.start = _nanos(starts)
    out.end = _nanos(ends)
    out.status_code = np.asarray(codes, np.int64)
    out.status_message = pa.array(messages, pa.string())
    out.attributes = attributes_from_messages(groups)
    out.events = events
    out.event_spans = np.asarray(event_spans, np.int64)
    return out


def _span_table(sp: _Spans) -> pa.Table:
    n = sp.n
    span_proj = project(sp.attributes, semconv.SPAN_ATTRIBUTES)
    event_proj = project(
        attributes_from_messages([e.attributes for e in sp.events]),
        semconv.EVENT_ATTRIBUTES,
        rows_of_owner=sp.event_spans,
    )
    event_offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(sp.event_spans, minlength=n), out=event_offsets[1:])
    event_offsets_arr = pa.array(event_offsets)
    res = _Resources(SPAN_SCHEMA, sp.resources, sp.per_resource)
    typed = _columns(n, SPAN_SCHEMA, [span_proj, event_proj])
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": _timestamps(sp.start),
        "duration_ns": pa.array(np.where(sp.end > sp.start, sp.end - sp.start, np.uint64(0)), pa.uint64()),
        "trace_id": sp.trace_id,
        "span_id": sp.span_id,
        "parent_span_id": sp.parent_span_id,
        "span_name": sp.name,
        "span_kind": _names(sp.kind, SPAN_KINDS),
        "status_code": _names(sp.status_code, STATUS_CODES),
        "status_message": sp.status_message,
        "resource_attributes": res.attributes,
        "span_attributes": span_proj.rest,
        "event_names": pa.ListArray.from_arrays(event_offsets_arr, pa.array([e.name for e in sp.events], pa.string())),
        "event_attributes": pa.ListArray.from_arrays(event_offsets_arr, event_proj.rest),
    }
    return _table(SPAN_SCHEMA, n, columns)


# ------------------------------------------------------------------------------------------ logs


class _Logs(_Records):
    """Log record columns as extracted, before typed-column projection."""

    time: npt.NDArray[np.uint64]
    observed: npt.NDArray[np.uint64]
    severity: IntArray
    severity_text: pa.Array
    body: Values
    attributes: Attributes
    trace_id: pa.Array
    span_id: pa.Array
    event_name: pa.Array


def decode_logs(payload: bytes, *, exact: bool = False, received_ns: int | None = None) -> pa.Table:
    """An ExportLogsServiceRequest (serialized) as a LOG_SCHEMA table.

    A record without timestamps gets ``received_ns`` (default: now) as its observed time, as the
    collector is the observer.
    """
    now = time.time_ns() if received_ns is None else received_ns
    if not exact:
        _parse(views.LogsRequestView, payload, Signal.LOGS)
        try:
            return _log_table(_logs_from_wire(payload), now)
        except wire.IrregularError:
            pass
    return _log_table(_logs_from_messages(_parse(ExportLogsServiceRequest, payload, Signal.LOGS)), now)


def _logs_from_wire(payload: bytes) -> _Logs:
    req = views.LogsRecordsView.FromString(payload)
    out = _Logs(_Locator("resourceLogs", "scopeLogs", "logRecords"))
    parts: list[bytes] = []
    for r, rl in enumerate(req.resource_logs):
        out.resources.append(rl.resource.attributes)
        count = 0
        for s, sl in enumerate(rl.scope_logs):
            records = sl.log_records
            out.locate.add(r, s, len(records))
            parts.extend(records)
            count += len(records)
        out.per_resource.append(count)
    n = out.n = len(parts)
    b = wire.Buffer(parts)
    f = wire.scan(b.array, b.start, b.end)
    sel = f.singular(1, wire.WT_FIXED64)
    out.time = _spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(11, wire.WT_FIXED64)
    out.observed = _spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(2, wire.WT_VARINT)
    out.severity = _spread_ints(n, f.rec[sel], f.value[sel].view(np.int64), np.int64)
    sel = f.singular(3, wire.WT_LEN)
    out.severity_text = _spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
    sel = f.singular(5, wire.WT_LEN)
    # Records without a body get an empty range, which reads as an empty value.
    body_start = b.end.copy()
    body_end = b.end.copy()
    body_start[f.rec[sel]] = f.start[sel]
    body_end[f.rec[sel]] = f.end[sel]
    if len(sel) != n:
        # Empty ranges must stay in buffer order for the gather: put them where the record starts.
        missing = np.ones(n, np.bool_)
        missing[f.rec[sel]] = False
        body_start[missing] = body_end[missing] = b.start[missing]
    out.body = wire.values(b, body_start, body_end)
    sel = f.where(6, wire.WT_LEN)
    counts = np.bincount(f.rec[sel], minlength=n).astype(np.int64)
    out.attributes = wire.keyvalues(b, f.start[sel], f.end[sel], counts)
    out.trace_id = _hex_from_wire(b, f, 9, n, width=16, optional=True, field="traceId", locate=out.locate)
    out.span_id = _hex_from_wire(b, f, 10, n, width=8, optional=True, field="spanId", locate=out.locate)
    sel = f.singular(12, wire.WT_LEN)
    out.event_name = _spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
    return out


def _logs_from_messages(req: Any) -> _Logs:
    out = _Logs(_Locator("resourceLogs", "scopeLogs", "logRecords"))
    times: list[int] = []
    observed: list[int] = []
    severities: list[int] = []
    severity_texts: list[str] = []
    bodies: list[Any] = []
    groups: list[Any] = []
    trace_ids: list[bytes] = []
    span_ids: list[bytes] = []
    event_names: list[str] = []
    for r, rl in enumerate(req.resource_logs):
        out.resources.append(rl.resource.attributes)
        count = 0
        for s, sl in enumerate(rl.scope_logs):
            out.locate.add(r, s, len(sl.log_records))
            count += len(sl.log_records)
            for rec in sl.log_records:
                times.append(rec.time_unix_nano)
                observed.append(rec.observed_time_unix_nano)
                severities.append(rec.severity_number)
                severity_texts.append(rec.severity_text)
                bodies.append(rec.body)
                groups.append(rec.attributes)
                trace_ids.append(rec.trace_id)
                span_ids.append(rec.span_id)
                event_names.append(rec.event_name)
        out.per_resource.append(count)
        out.n += count
    out.time = _nanos(times)
    out.observed = _nanos(observed)
    out.severity = np.asarray(severities, np.int64)
    out.severity_text = pa.array(severity_texts, pa.string())
    out.body = values_from_messages(bodies)
    out.attributes = attributes_from_messages(groups)
    out.trace_id = _hex_from_messages(trace_ids, width=16, optional=True, field="traceId", locate=out.locate)
    out.span_id = _hex_from_messages(span_ids, width=8, optional=True, field="spanId", locate=out.locate)
    out.event_name = pa.array(event_names, pa.string())
    return out


def _log_table(lg: _Logs, now: int) -> pa.Table:
    n = lg.n
    proj = project(lg.attributes, semconv.LOG_ATTRIBUTES)
    # LogRecord.event_name is the current field; the event.name attribute (rank 1) is the older form.
    event_name = lg.event_name.fill_null("")
    has_name = pc.not_equal(event_name, "").to_numpy(zero_copy_only=False)
    proj.candidates.setdefault("event_name", []).append(
        (0, np.flatnonzero(has_name), event_name.filter(pa.array(has_name)))
    )
    t = lg.time
    o = np.where(lg.observed != 0, lg.observed, np.where(t != 0, t, np.uint64(now)))
    t = np.where(t != 0, t, o)
    res = _Resources(LOG_SCHEMA, lg.resources, lg.per_resource)
    typed = _columns(n, LOG_SCHEMA, [proj])
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": _timestamps(t),
        "observed_timestamp": _timestamps(o),
        "trace_id": lg.trace_id,
        "span_id": lg.span_id,
        "severity_number": pa.array(np.clip(lg.severity, 0, 255), pa.uint8()),
        "severity_text": lg.severity_text,
        "body": lg.body.text(),
        "resource_attributes": res.attributes,
        "log_attributes": proj.rest,
    }
    return _table(LOG_SCHEMA, n, columns)


# --------------------------------------------------------------------------------------- metrics


def decode_metrics(payload: bytes) -> pa.Table:
    """An ExportMetricsServiceRequest (serialized) as a METRIC_SCHEMA table, one row per data point.

    Histograms keep count, sum, bounds and bucket counts (``value`` is the sum); exponential
    histograms are converted to explicit bounds (negative buckets and the zero bucket count into the
    first bucket); summaries keep count and sum.
    """
    req = _parse(ExportMetricsServiceRequest, payload, Signal.METRICS)
    return _metrics(req)


class _Points:
    """Per-data-point columns, appended to in order."""

    def __init__(self) -> None:
        self.time: list[int] = []
        self.start: list[int] = []
        self.name: list[str] = []
        self.kind: list[str] = []
        self.unit: list[str] = []
        self.monotonic: list[bool] = []
        self.value: list[float] = []
        self.count: list[int] = []
        self.sum: list[float] = []
        self.bounds: list[list[float]] = []
        self.buckets: list[list[int]] = []
        self.attrs: list[Sequence[KeyValue]] = []

    def add(
        self,
        metric: Any,
        *,
        kind: str,
        point: Any,
        value: float,
        count: int = 0,
        total: float = 0.0,
        bounds: list[float] | None = None,
        buckets: list[int] | None = None,
        monotonic: bool = False,
    ) -> None:
        self.time.append(point.time_unix_nano)
        self.start.append(point.start_time_unix_nano)
        self.name.append(metric.name)
        self.kind.append(kind)
        self.unit.append(metric.unit)
        self.monotonic.append(monotonic)
        self.value.append(value)
        self.count.append(count)
        self.sum.append(total)
        self.bounds.append(bounds or [])
        self.buckets.append(buckets or [])
        self.attrs.append(point.attributes)


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else float(point.as_double)


def _exponential(point: Any) -> tuple[list[float], list[int]]:
    positive = point.positive
    counts = list(positive.bucket_counts)
    if not counts:
        return [], [point.zero_count + sum(point.negative.bucket_counts)]
    base = 2.0 ** (2.0**-point.scale)
    lower = [_power(base, positive.offset + k) for k in range(len(counts) + 1)]
    return lower, [point.zero_count + sum(point.negative.bucket_counts), *counts, 0]


def _power(base: float, exponent: int) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf


def _metrics(req: Any) -> pa.Table:
    resources: list[Sequence[KeyValue]] = []
    per_resource: list[int] = []
    pts = _Points()
    for rm in req.resource_metrics:
        resources.append(rm.resource.attributes)
        before = len(pts.time)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                if which == "gauge":
                    for p in m.gauge.data_points:
                        pts.add(m, kind="gauge", point=p, value=_number(p))
                elif which == "sum":
                    mono = m.sum.is_monotonic
                    for p in m.sum.data_points:
                        pts.add(m, kind="sum", point=p, value=_number(p), monotonic=mono)
                elif which == "histogram":
                    for p in m.histogram.data_points:
                        pts.add(
                            m,
                            kind="histogram",
                            point=p,
                            value=p.sum,
                            count=p.count,
                            total=p.sum,
                            bounds=list(p.explicit_bounds),
                            buckets=list(p.bucket_counts),
                        )
                elif which == "exponential_histogram":
                    for p in m.exponential_histogram.data_points:
                        bounds, buckets = _exponential(p)
                        pts.add(
                            m,
                            kind="exp_histogram",
                            point=p,
                            value=p.sum,
                            count=p.count,
                            total=p.sum,
                            bounds=bounds,
                            buckets=buckets,
                        )
                elif which == "summary":
                    for p in m.summary.data_points:
                        pts.add(m, kind="summary", point=p, value=p.sum, count=p.count, total=p.sum)
        per_resource.append(len(pts.time) - before)
    n = len(pts.time)
    proj = project(attributes_from_messages(pts.attrs), semconv.METRIC_ATTRIBUTES)
    res = _Resources(METRIC_SCHEMA, resources, per_resource)
    typed = _columns(n, METRIC_SCHEMA, [proj])
    t = _nanos(pts.time)
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": _timestamps(t),
        "start_timestamp": _timestamps(np.where(_nanos(pts.start) != 0, _nanos(pts.start), t)),
        "metric_name": pa.array(pts.name, pa.string()),
        "metric_kind": pa.array(pts.kind, pa.string()),
        "unit": pa.array(pts.unit, pa.string()),
        "is_monotonic": pa.array(pts.monotonic, pa.bool_()),
        "value": pa.array(pts.value, pa.float64()),
        "count": pa.array(pts.count, pa.uint64()),
        "sum": pa.array(pts.sum, pa.float64()),
        "bounds": pa.array(pts.bounds, pa.list_(pa.float64())),
        "bucket_counts": pa.array(pts.buckets, pa.list_(pa.uint64())),
        "resource_attributes": res.attributes,
        "attributes": proj.rest,
    }
    return _table(METRIC_SCHEMA, n, columns)


DECODERS: Mapping[Signal, Callable[[bytes], pa.Table]] = {
    Signal.TRACES: decode_traces,
    Signal.LOGS: decode_logs,
    Signal.METRICS: decode_metrics,
}


def decode(signal: Signal, payload: bytes) -> pa.Table:
    """Decode a serialized export request of ``signal``; raises DecodeError."""
    return DECODERS[signal](payload)
