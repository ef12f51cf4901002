"""Spans of an ExportTraceServiceRequest as SPAN_SCHEMA columns, by the columnar or the exact path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors import semconv
from collectors.otlp import wire
from collectors.otlp.attributes import Attributes, IntArray, attributes_from_messages, project
from collectors.otlp.limits import DEFAULT_LIMITS, ORIGINAL_TIME, Clock, RecordLimits
from collectors.otlp.tables import (
    SLICE_BYTES,
    Decoded,
    Locator,
    Records,
    Report,
    Resources,
    Slice,
    cap_fields,
    capped,
    enum_names,
    hex_from_messages,
    hex_from_wire,
    message_records,
    nanos,
    replace_times,
    schema_table,
    slice_fields,
    sliced_records,
    spread,
    spread_ints,
    tabled,
    timestamps,
    typed_columns,
    with_entry,
)
from sovtel.records import SPAN_SCHEMA

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")


class Spans(Records):
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


def span_slices(payload: bytes, limits: RecordLimits = DEFAULT_LIMITS, slice_bytes: int | None = SLICE_BYTES
                ) -> Iterator[Spans]:
    """The columnar path: one shallow parse, then the spans of each slice of about ``slice_bytes``
    (None: one slice) decoded in lock step; each slice's temporaries are gone before the next.

    Raises ``wire.IrregularError`` for anything the exact path must decide: an encoding this path
    does not take, or a request protobuf would reject. Spans whose ids have a wrong length are
    rejected in the report; attributes and events beyond the limits are dropped and counted.
    """
    return sliced_records(payload, slice_bytes, lambda part: _spans_of(part, limits))


def spans_from_wire(payload: bytes, limits: RecordLimits = DEFAULT_LIMITS) -> Spans:
    """The columnar path for a whole request at once (``span_slices`` in one slice)."""
    (whole,) = span_slices(payload, limits, None)
    return whole


def span_table_from_wire(payload: bytes, limits: RecordLimits = DEFAULT_LIMITS, clock: Clock | None = None,
                         slice_bytes: int | None = SLICE_BYTES) -> Decoded:
    """The request's spans decoded slice by slice (``span_slices``) and tabled (``span_table``) as one Decoded."""
    return tabled(span_slices(payload, limits, slice_bytes), lambda sp: span_table(sp, limits, clock))


def _spans_of(part: Slice, limits: RecordLimits) -> Spans:
    """The columns of one slice's spans."""
    out = Spans(part.locator("resourceSpans", "scopeSpans", "spans"))
    b, f = slice_fields(part, out)
    n = out.n
    sel = f.singular(5, wire.WT_LEN)
    out.name = spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
    sel = f.singular(6, wire.WT_VARINT)
    out.kind = spread_ints(n, f.rec[sel], f.value[sel].view(np.int64), np.int64)
    sel = f.singular(7, wire.WT_FIXED64)
    out.start = spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(8, wire.WT_FIXED64)
    out.end = spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(15, wire.WT_LEN)
    status_rows = f.rec[sel]
    st = wire.scan(b.array, f.start[sel], f.end[sel])
    code = st.singular(3, wire.WT_VARINT)
    out.status_code = spread_ints(n, status_rows[st.rec[code]], st.value[code].view(np.int64), np.int64)
    msg = st.singular(2, wire.WT_LEN)
    out.status_message = spread(n, status_rows[st.rec[msg]], b.strings(st.start[msg], st.end[msg]))
    sel = f.where(9, wire.WT_LEN)
    counts = np.bincount(f.rec[sel], minlength=n).astype(np.int64)
    sel, counts = cap_fields(sel, counts, limits.max_attributes_per_record, out.report, "attributes_over_limit")
    out.attributes = wire.keyvalues(b, f.start[sel], f.end[sel], counts)
    sel = f.where(11, wire.WT_LEN)
    # Every event is checked (as protobuf would), in one parse; only those within the cap are kept.
    events = _repeated(b, f, sel).events
    kept, _counts = cap_fields(
        np.arange(len(sel), dtype=np.int64),
        np.bincount(f.rec[sel], minlength=n).astype(np.int64),
        limits.max_events_per_span,
        out.report,
        "events_over_limit",
    )
    out.event_spans = f.rec[sel][kept]
    out.events = list(events) if len(kept) == len(sel) else [events[i] for i in kept.tolist()]
    # Neither stored nor needed, but protobuf rejects a request whose trace state or links are invalid.
    sel = f.singular(3, wire.WT_LEN)
    b.strings(f.start[sel], f.end[sel])
    _repeated(b, f, f.where(13, wire.WT_LEN))
    out.trace_id = hex_from_wire(b, f, 1, n, width=16, optional=False, field="traceId", records=out)
    out.span_id = hex_from_wire(b, f, 2, n, width=8, optional=False, field="spanId", records=out)
    out.parent_span_id = hex_from_wire(b, f, 4, n, width=8, optional=True, field="parentSpanId", records=out)
    return out


def _varint_size(n: IntArray) -> IntArray:
    size = np.ones(len(n), np.int64)
    for k in range(1, 10):
        size += n >= (1 << (7 * k))
    return size


def _repeated(b: wire.Buffer, f: wire.Fields, sel: IntArray) -> Any:
    """The span fields ``sel`` (events or links) parsed as one Span holding only them: one C-level parse
    checks them all, however many there are. Their tags are one byte and their lengths in shortest form
    (``scan`` takes no other), so each field's bytes start that far before its payload."""
    if not len(sel):
        return Span()
    start, end = f.start[sel], f.end[sel]
    begin = start - 1 - _varint_size(end - start)
    data = b.data
    return wire.parse(Span, b"".join([data[i:j] for i, j in zip(begin.tolist(), end.tolist(), strict=True)]))


def spans_from_messages(req: Any, limits: RecordLimits = DEFAULT_LIMITS, report: Report | None = None) -> Spans:
    """The exact path: span columns from a parsed ExportTraceServiceRequest, one object at a time.

    ``report`` may already hold rejections (of placeholder spans standing in for unreadable ones).
    """
    out = Spans(Locator("resourceSpans", "scopeSpans", "spans"), report)
    max_attributes, max_events = limits.max_attributes_per_record, limits.max_events_per_span
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
    for i, sp in enumerate(message_records(out, req.resource_spans, "scope_spans", "spans")):
        trace_ids.append(sp.trace_id)
        span_ids.append(sp.span_id)
        parent_ids.append(sp.parent_span_id)
        names.append(sp.name)
        kinds.append(sp.kind)
        starts.append(sp.start_time_unix_nano)
        ends.append(sp.end_time_unix_nano)
        codes.append(sp.status.code)
        messages.append(sp.status.message)
        attributes, span_events = sp.attributes, sp.events
        # The length checks inline: this loop runs once per span on the exact path.
        if len(attributes) > max_attributes:
            attributes = capped(attributes, max_attributes, out.report, "attributes_over_limit")
        groups.append(attributes)
        if span_events:
            if len(span_events) > max_events:
                span_events = capped(span_events, max_events, out.report, "events_over_limit")
            events.extend(span_events)
            event_spans.extend([i] * len(span_events))
    out.trace_id = hex_from_messages(trace_ids, width=16, optional=False, field="traceId", records=out)
    out.span_id = hex_from_messages(span_ids, width=8, optional=False, field="spanId", records=out)
    out.parent_span_id = hex_from_messages(parent_ids, width=8, optional=True, field="parentSpanId", records=out)
    out.name = pa.array(names, pa.string())
    out.kind = np.asarray(kinds, np.int64)
    out.start = nanos(starts)
    out.end = nanos(ends)
    out.status_code = np.asarray(codes, np.int64)
    out.status_message = pa.array(messages, pa.string())
    out.attributes = attributes_from_messages(groups)
    out.events = events
    out.event_spans = np.asarray(event_spans, np.int64)
    return out


def span_table(sp: Spans, limits: RecordLimits = DEFAULT_LIMITS, clock: Clock | None = None) -> pa.Table:
    """The SPAN_SCHEMA table of extracted spans (typed columns projected from their attributes).

    With ``clock``, a start time that is missing or too far ahead becomes the receive time (the
    original kept in an attribute) and such a span's duration 0; an end time too far ahead makes the
    duration 0. Without, times are kept as sent. Rejected spans are still rows here (see ``finish``).
    """
    n = sp.n
    report = sp.report
    span_proj = project(sp.attributes, semconv.SPAN_ATTRIBUTES)
    cap = limits.max_attributes_per_event
    event_proj = project(
        attributes_from_messages([capped(e.attributes, cap, report, "event_attributes_over_limit") for e in sp.events]),
        semconv.EVENT_ATTRIBUTES,
        rows_of_owner=sp.event_spans,
    )
    start, end = sp.start, sp.end
    duration = np.where(end > start, end - start, np.uint64(0))
    span_attributes = span_proj.rest
    if clock is not None:
        start, replaced = replace_times(sp.start, clock, report)
        late_end = end > np.uint64(clock.latest)
        duration[replaced] = 0
        late_end[replaced] = False  # their duration is unknown already, counted with their start
        if report.mask is not None:
            late_end &= ~report.mask
        if late_end.any():
            report.removed["end_time_ignored:future"] += int(late_end.sum())
            duration[late_end] = 0
        original = [str(t) for t in sp.start[replaced].tolist()]
        span_attributes = with_entry(span_attributes, replaced, ORIGINAL_TIME, original)
    event_offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(sp.event_spans, minlength=n), out=event_offsets[1:])
    event_offsets_arr = pa.array(event_offsets)
    res = Resources(SPAN_SCHEMA, sp.resources, sp.per_resource)
    typed = typed_columns(n, SPAN_SCHEMA, [span_proj, event_proj])
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": timestamps(start),
        "duration_ns": pa.array(duration, pa.uint64()),
        "trace_id": sp.trace_id,
        "span_id": sp.span_id,
        "parent_span_id": sp.parent_span_id,
        "span_name": sp.name,
        "span_kind": enum_names(sp.kind, SPAN_KINDS),
        "status_code": enum_names(sp.status_code, STATUS_CODES),
        "status_message": sp.status_message,
        "resource_attributes": res.attributes,
        "span_attributes": span_attributes,
        "event_names": pa.ListArray.from_arrays(event_offsets_arr, pa.array([e.name for e in sp.events], pa.string())),
        "event_attributes": pa.ListArray.from_arrays(event_offsets_arr, event_proj.rest),
    }
    return schema_table(SPAN_SCHEMA, n, columns)

