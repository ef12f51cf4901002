"""Log records of an ExportLogsServiceRequest as LOG_SCHEMA columns, by the columnar or the exact path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from collectors import semconv
from collectors.otlp import wire
from collectors.otlp.attributes import (
    Attributes,
    IntArray,
    Values,
    attributes_from_messages,
    project,
    values_from_messages,
)
from collectors.otlp.limits import DEFAULT_LIMITS, ORIGINAL_OBSERVED_TIME, ORIGINAL_TIME, Clock, RecordLimits
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
    hex_from_messages,
    hex_from_wire,
    message_records,
    nanos,
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
from sovtel.records import LOG_SCHEMA


class Logs(Records):
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


def log_slices(payload: bytes, limits: RecordLimits = DEFAULT_LIMITS, slice_bytes: int | None = SLICE_BYTES
               ) -> Iterator[Logs]:
    """The columnar path for log records, slice by slice; raises ``wire.IrregularError`` as ``span_slices`` does."""
    return sliced_records(payload, slice_bytes, lambda part: _logs_of(part, limits))


def logs_from_wire(payload: bytes, limits: RecordLimits = DEFAULT_LIMITS) -> Logs:
    """The columnar path for a whole request at once (``log_slices`` in one slice)."""
    (whole,) = log_slices(payload, limits, None)
    return whole


def log_table_from_wire(payload: bytes, limits: RecordLimits, now: int, clock: Clock | None = None,
                        slice_bytes: int | None = SLICE_BYTES) -> Decoded:
    """The request's log records decoded slice by slice and tabled (``log_table``) as one Decoded."""
    return tabled(log_slices(payload, limits, slice_bytes), lambda lg: log_table(lg, now, clock))


def _logs_of(part: Slice, limits: RecordLimits) -> Logs:
    """The columns of one slice's log records."""
    out = Logs(part.locator("resourceLogs", "scopeLogs", "logRecords"))
    b, f = slice_fields(part, out)
    n = out.n
    sel = f.singular(1, wire.WT_FIXED64)
    out.time = spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(11, wire.WT_FIXED64)
    out.observed = spread_ints(n, f.rec[sel], b.fixed64(f.start[sel]), np.uint64)
    sel = f.singular(2, wire.WT_VARINT)
    out.severity = spread_ints(n, f.rec[sel], f.value[sel].view(np.int64), np.int64)
    sel = f.singular(3, wire.WT_LEN)
    out.severity_text = spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
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
    sel, counts = cap_fields(sel, counts, limits.max_attributes_per_record, out.report, "attributes_over_limit")
    out.attributes = wire.keyvalues(b, f.start[sel], f.end[sel], counts)
    sel = f.singular(12, wire.WT_LEN)
    out.event_name = spread(n, f.rec[sel], b.strings(f.start[sel], f.end[sel]))
    out.trace_id = hex_from_wire(b, f, 9, n, width=16, optional=True, field="traceId", records=out)
    out.span_id = hex_from_wire(b, f, 10, n, width=8, optional=True, field="spanId", records=out)
    return out


def logs_from_messages(req: Any, limits: RecordLimits = DEFAULT_LIMITS, report: Report | None = None) -> Logs:
    """The exact path: log record columns from a parsed ExportLogsServiceRequest (``report`` as for spans)."""
    out = Logs(Locator("resourceLogs", "scopeLogs", "logRecords"), report)
    max_attributes = limits.max_attributes_per_record
    times: list[int] = []
    observed: list[int] = []
    severities: list[int] = []
    severity_texts: list[str] = []
    bodies: list[Any] = []
    groups: list[Any] = []
    trace_ids: list[bytes] = []
    span_ids: list[bytes] = []
    event_names: list[str] = []
    for rec in message_records(out, req.resource_logs, "scope_logs", "log_records"):
        times.append(rec.time_unix_nano)
        observed.append(rec.observed_time_unix_nano)
        severities.append(rec.severity_number)
        severity_texts.append(rec.severity_text)
        bodies.append(rec.body)
        groups.append(capped(rec.attributes, max_attributes, out.report, "attributes_over_limit"))
        trace_ids.append(rec.trace_id)
        span_ids.append(rec.span_id)
        event_names.append(rec.event_name)
    out.time = nanos(times)
    out.observed = nanos(observed)
    out.severity = np.asarray(severities, np.int64)
    out.severity_text = pa.array(severity_texts, pa.string())
    out.body = values_from_messages(bodies)
    out.attributes = attributes_from_messages(groups)
    out.trace_id = hex_from_messages(trace_ids, width=16, optional=True, field="traceId", records=out)
    out.span_id = hex_from_messages(span_ids, width=8, optional=True, field="spanId", records=out)
    out.event_name = pa.array(event_names, pa.string())
    return out


def log_table(lg: Logs, now: int, clock: Clock | None = None) -> pa.Table:
    """The LOG_SCHEMA table of extracted log records; ``now`` stands in for missing times.

    A missing time is the observed time, a missing observed time the time, and both missing the
    receive time (OTLP's rule: the collector is then the observer). With ``clock``, a time too far
    ahead counts as missing, its original kept in an attribute; without, times are kept as sent.
    """
    n = lg.n
    proj = project(lg.attributes, semconv.LOG_ATTRIBUTES)
    # LogRecord.event_name is the current field; the event.name attribute (rank 1) is the older form.
    event_name = lg.event_name.fill_null("")
    has_name = pc.not_equal(event_name, "").to_numpy(zero_copy_only=False)
    proj.candidates.setdefault("event_name", []).append(
        (0, np.flatnonzero(has_name), event_name.filter(pa.array(has_name)))
    )
    t, observed = lg.time, lg.observed
    log_attributes = proj.rest
    if clock is not None:
        now = clock.now
        latest = np.uint64(clock.latest)
        kept = ~lg.report.mask if lg.report.mask is not None else np.ones(n, np.bool_)
        both_missing = int(((t == 0) & (observed == 0) & kept).sum())
        if both_missing:
            lg.report.removed["timestamp_clamped:zero"] += both_missing
        for key, times in ((ORIGINAL_TIME, t), (ORIGINAL_OBSERVED_TIME, observed)):
            late = np.flatnonzero(times > latest)
            if len(late):
                lg.report.removed["timestamp_clamped:future"] += int(kept[late].sum())
                log_attributes = with_entry(log_attributes, late, key, [str(v) for v in times[late].tolist()])
        t = np.where(t > latest, np.uint64(0), t)
        observed = np.where(observed > latest, np.uint64(0), observed)
    o = np.where(observed != 0, observed, np.where(t != 0, t, np.uint64(now)))
    t = np.where(t != 0, t, o)
    res = Resources(LOG_SCHEMA, lg.resources, lg.per_resource)
    typed = typed_columns(n, LOG_SCHEMA, [proj])
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": timestamps(t),
        "observed_timestamp": timestamps(o),
        "trace_id": lg.trace_id,
        "span_id": lg.span_id,
        "severity_number": pa.array(np.clip(lg.severity, 0, 255), pa.uint8()),
        "severity_text": lg.severity_text,
        "body": lg.body.text(),
        "resource_attributes": res.attributes,
        "log_attributes": log_attributes,
    }
    return schema_table(LOG_SCHEMA, n, columns)

