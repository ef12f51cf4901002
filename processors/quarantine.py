"""Fail-closed handling shared by the privacy processors: make records content-free or drop them.

A record whose masking or hashing failed must never be forwarded raw. Quarantine keeps the record
(its timing, status and counts are still useful) but empties every free-text column and attribute
value, optionally the subject identifiers too, and moves it to the strictest tier.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sovtel.records import ATTRIBUTE_COLUMNS, SPAN_CONTENT_COLUMNS, SPAN_SUBJECT_COLUMNS, Signal
from sovtel.telemetry import ComponentTelemetry

STRICTEST_TIER = "local"

# Free-text columns per signal that quarantine empties.
CONTENT_COLUMNS: dict[Signal, tuple[str, ...]] = {
    Signal.TRACES: (*SPAN_CONTENT_COLUMNS, "status_message"),
    Signal.LOGS: ("body",),
    Signal.METRICS: (),
}

# Map columns whose values quarantine empties (keys stay: they are the schema, not the data).
MAP_COLUMNS: dict[Signal, tuple[str, ...]] = {
    Signal.TRACES: (*ATTRIBUTE_COLUMNS[Signal.TRACES], "event_attributes"),
    Signal.LOGS: ATTRIBUTE_COLUMNS[Signal.LOGS],
    Signal.METRICS: ATTRIBUTE_COLUMNS[Signal.METRICS],
}


def subject_columns(schema: pa.Schema) -> tuple[str, ...]:
    """The subject identifier columns present in a schema."""
    return tuple(c for c in SPAN_SUBJECT_COLUMNS if c in schema.names)


def _set(table: pa.Table, name: str, array: pa.Array | pa.ChunkedArray) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), array)


def _blank_map_values(arr: pa.MapArray, entry_rows: np.ndarray) -> pa.MapArray:
    """The map array with values emptied for entries whose row is selected."""
    offsets = arr.offsets.to_numpy(zero_copy_only=False)
    start, end = int(offsets[0]), int(offsets[-1])
    keys, items = arr.keys, arr.items
    if start != 0 or len(keys) != end:
        keys, items = keys.slice(start, end - start), items.slice(start, end - start)
    new_items = pc.if_else(pa.array(entry_rows, type=pa.bool_()), "", items)
    rebased = pa.array(offsets - start, type=pa.int32())
    return pa.MapArray.from_arrays(rebased, keys, new_items, type=arr.type, mask=arr.is_null())


def blank_map_column(column: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """A map (or list of maps) column with the values of the selected rows emptied."""
    chunks, pos = [], 0
    for chunk in column.chunks:
        n = len(chunk)
        sel = rows[pos : pos + n]
        pos += n
        if isinstance(chunk, pa.MapArray):
            lengths = np.diff(chunk.offsets.to_numpy(zero_copy_only=False))
            chunks.append(_blank_map_values(chunk, np.repeat(sel, lengths)))
        else:  # list<map>
            list_offsets = chunk.offsets.to_numpy(zero_copy_only=False)
            inner = chunk.values.slice(int(list_offsets[0]), int(list_offsets[-1] - list_offsets[0]))
            inner_rows = np.repeat(sel, np.diff(list_offsets))
            inner_lengths = np.diff(inner.offsets.to_numpy(zero_copy_only=False))
            new_inner = _blank_map_values(inner, np.repeat(inner_rows, inner_lengths))
            rebased = pa.array(list_offsets - list_offsets[0], type=pa.int32())
            chunks.append(pa.ListArray.from_arrays(rebased, new_inner, type=chunk.type, mask=chunk.is_null()))
    return pa.chunked_array(chunks, type=column.type)


def quarantine_rows(table: pa.Table, signal: Signal, rows: np.ndarray, *, subjects: bool = False) -> pa.Table:
    """The table with the selected rows made content-free and moved to the strictest tier.

    ``subjects`` also empties the subject identifiers (when their pseudonymisation failed).
    """
    if not rows.any():
        return table
    mask = pa.array(rows, type=pa.bool_())
    names = list(CONTENT_COLUMNS[signal])
    if subjects:
        names.extend(subject_columns(table.schema))
    for name in names:
        table = _set(table, name, pc.if_else(mask, "", table.column(name)))
    for name in MAP_COLUMNS[signal]:
        table = _set(table, name, blank_map_column(table.column(name), rows))
    if "tier" in table.schema.names:
        table = _set(table, "tier", pc.if_else(mask, STRICTEST_TIER, table.column("tier")))
    return table


def fail_closed(
    table: pa.Table,
    signal: Signal,
    rows: np.ndarray,
    *,
    mode: str,
    reason: str,
    telemetry: ComponentTelemetry,
    subjects: bool = False,
) -> pa.Table:
    """Quarantine (``mode="quarantine"``) or drop (``mode="drop"``) the selected rows, counting them."""
    n = int(rows.sum())
    if n == 0:
        return table
    if mode == "drop":
        telemetry.dropped(signal.value, n, reason)
        return table.filter(pa.array(~rows, type=pa.bool_()))
    telemetry.removed(signal.value, n, f"quarantined:{reason}")
    return quarantine_rows(table, signal, rows, subjects=subjects)
