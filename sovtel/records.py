"""Columnar record schemas: the Arrow shape of every batch from decode to insert.

A batch is a ``pyarrow.Table`` whose columns are exactly one of the schemas below, in order, so
that receivers, processors and sinks agree without per-span Python objects (design §3). The
ClickHouse DDL in ``storage/migrations`` mirrors these columns one for one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

TIMESTAMP = pa.timestamp("ns", tz="UTC")
ATTRIBUTES = pa.map_(pa.string(), pa.string())


class Signal(enum.StrEnum):
    """The kinds of telemetry a pipeline carries."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


# Free-text span columns that may carry personal content (prompts, completions, tool I/O).
SPAN_CONTENT_COLUMNS: tuple[str, ...] = (
    "input_messages",
    "output_messages",
    "system_instructions",
    "tool_call_arguments",
    "tool_call_result",
    "retrieval_documents",
)

# Identifier columns that hold pseudonyms once the privacy processors have run.
SPAN_SUBJECT_COLUMNS: tuple[str, ...] = ("tenant_id", "user_id", "session_id", "conversation_id")

SPAN_SCHEMA = pa.schema(
    [
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("duration_ns", pa.uint64(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("parent_span_id", pa.string(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("span_name", pa.string(), nullable=False),
        pa.field("span_kind", pa.string(), nullable=False),
        pa.field("status_code", pa.string(), nullable=False),
        pa.field("status_message", pa.string(), nullable=False),
        # GenAI semantic conventions as typed columns.
        pa.field("operation", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("request_model", pa.string(), nullable=False),
        pa.field("response_model", pa.string(), nullable=False),
        pa.field("input_tokens", pa.uint32(), nullable=False),
        pa.field("output_tokens", pa.uint32(), nullable=False),
        pa.field("cache_read_tokens", pa.uint32(), nullable=False),
        pa.field("reasoning_tokens", pa.uint32(), nullable=False),
        pa.field("ttft_s", pa.float64(), nullable=True),
        pa.field("finish_reasons", pa.list_(pa.string()), nullable=False),
        pa.field("error_type", pa.string(), nullable=False),
        # Subject identifiers (pseudonymised by the privacy processors before storage).
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("key_id", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        # Content: kept only if the purpose allows it, and then masked.
        pa.field("input_messages", pa.string(), nullable=False),
        pa.field("output_messages", pa.string(), nullable=False),
        pa.field("system_instructions", pa.string(), nullable=False),
        pa.field("tool_call_arguments", pa.string(), nullable=False),
        pa.field("tool_call_result", pa.string(), nullable=False),
        pa.field("retrieval_documents", pa.string(), nullable=False),
        pa.field("pii_count", pa.uint16(), nullable=False),
        pa.field("resource_attributes", ATTRIBUTES, nullable=False),
        pa.field("span_attributes", ATTRIBUTES, nullable=False),
        pa.field("event_names", pa.list_(pa.string()), nullable=False),
        pa.field("event_attributes", pa.list_(ATTRIBUTES), nullable=False),
        # Edge quality scores (scorer or evaluation name → value / label); content is not kept.
        pa.field("quality_scores", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("quality_labels", ATTRIBUTES, nullable=False),
        # PII detections by entity type (counts only).
        pa.field("pii_entities", pa.map_(pa.string(), pa.uint16()), nullable=False),
    ]
)

LOG_SCHEMA = pa.schema(
    [
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("observed_timestamp", TIMESTAMP, nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("severity_number", pa.uint8(), nullable=False),
        pa.field("severity_text", pa.string(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("body", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("key_id", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("pii_count", pa.uint16(), nullable=False),
        pa.field("resource_attributes", ATTRIBUTES, nullable=False),
        pa.field("log_attributes", ATTRIBUTES, nullable=False),
    ]
)

METRIC_SCHEMA = pa.schema(
    [
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("start_timestamp", TIMESTAMP, nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("metric_kind", pa.string(), nullable=False),  # gauge|sum|histogram|exp_histogram|summary
        pa.field("unit", pa.string(), nullable=False),
        pa.field("is_monotonic", pa.bool_(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("count", pa.uint64(), nullable=False),
        pa.field("sum", pa.float64(), nullable=False),
        pa.field("bounds", pa.list_(pa.float64()), nullable=False),
        pa.field("bucket_counts", pa.list_(pa.uint64()), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("resource_attributes", ATTRIBUTES, nullable=False),
        pa.field("attributes", ATTRIBUTES, nullable=False),
    ]
)

SCHEMAS: Mapping[Signal, pa.Schema] = {
    Signal.TRACES: SPAN_SCHEMA,
    Signal.LOGS: LOG_SCHEMA,
    Signal.METRICS: METRIC_SCHEMA,
}

# The table each signal lands in, inside a tier's database.
TABLES: Mapping[Signal, str] = {
    Signal.TRACES: "spans",
    Signal.LOGS: "logs",
    Signal.METRICS: "metrics",
}

# The map columns that carry free-form attributes, per signal (what minimisation filters).
ATTRIBUTE_COLUMNS: Mapping[Signal, tuple[str, ...]] = {
    Signal.TRACES: ("resource_attributes", "span_attributes"),
    Signal.LOGS: ("resource_attributes", "log_attributes"),
    Signal.METRICS: ("resource_attributes", "attributes"),
}


@dataclass(frozen=True, slots=True)
class Batch:
    """One columnar batch of one signal, with request-scoped metadata.

    ``meta`` carries what the receiver knows of the request (authenticated tenant, receiver name,
    transport); it is never stored.
    """

    signal: Signal
    table: pa.Table
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of records in the batch."""
        return int(self.table.num_rows)

    def replace(self, table: pa.Table) -> Batch:
        """The same batch carrying another table (processors return new batches)."""
        return Batch(self.signal, table, self.meta)


def empty_table(signal: Signal) -> pa.Table:
    """A zero-row table of the signal's schema."""
    return SCHEMAS[signal].empty_table()


def table_from_columns(signal: Signal, columns: Mapping[str, Sequence[Any] | pa.Array]) -> pa.Table:
    """Build a table of the signal's schema from column arrays, filling absent columns with defaults.

    Raises ``ValueError`` naming the column when a value does not fit the schema.
    """
    schema = SCHEMAS[signal]
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"unknown {signal.value} column(s): {', '.join(sorted(unknown))}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"{signal.value} columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    arrays: list[pa.Array] = []
    for f in schema:
        if f.name in columns:
            values = columns[f.name]
            try:
                arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type=f.type)
                if arr.type != f.type:
                    arr = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise ValueError(f"{signal.value} column {f.name!r}: {exc}") from exc
        else:
            arr = default_array(f, n)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def default_array(f: pa.Field, n: int) -> pa.Array:
    """An array of ``n`` default values for a schema field (empty string, zero, empty list/map)."""
    t = f.type
    if f.nullable and not pa.types.is_map(t) and not pa.types.is_list(t):
        return pa.nulls(n, type=t)
    if pa.types.is_string(t):
        return pa.array([""] * n, type=t)
    if pa.types.is_map(t) or pa.types.is_list(t):
        return pa.array([[]] * n, type=t)
    if pa.types.is_boolean(t):
        return pa.array([False] * n, type=t)
    if pa.types.is_timestamp(t):
        return pa.array([0] * n, type=pa.int64()).cast(t)
    return pa.array([0] * n, type=t)


@dataclass(frozen=True)
class MapEntries:
    """The entries of a map or list-of-maps column, flat, with what it takes to put rewritten ones back.

    Processors that rewrite attribute values or drop attribute keys work on ``keys`` and ``items``
    as flat arrays (no Python object per entry) and hand the result to ``rebuild``.
    """

    type: pa.DataType
    outer: pa.ListArray | None  # the list<map> array; None for a plain map column
    maps: pa.MapArray
    offsets: np.ndarray  # entry offsets of each map, rebased to 0
    keys: pa.Array
    items: pa.Array

    def rebuild(self, keys: pa.Array, items: pa.Array, keep: np.ndarray | None = None) -> pa.ChunkedArray:
        """The column with ``keys``/``items`` as its entries, dropping entries where ``keep`` is False."""
        offsets = self.offsets
        if keep is not None:
            prefix = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(keep, out=prefix[1:])
            offsets = prefix[offsets]
            mask = pa.array(keep, type=pa.bool_())
            keys, items = keys.filter(mask), items.filter(mask)
        maps = pa.MapArray.from_arrays(
            pa.array(offsets.astype(np.int32)), keys, items, type=self.maps.type, mask=self.maps.is_null()
        )
        if self.outer is None:
            return pa.chunked_array([maps], type=self.type)
        lists = self.outer.offsets.to_numpy(zero_copy_only=False)
        out = pa.ListArray.from_arrays(
            pa.array(lists - lists[0], type=pa.int32()), maps, type=self.type, mask=self.outer.is_null()
        )
        return pa.chunked_array([out], type=self.type)


def map_entries(column: pa.ChunkedArray | pa.Array) -> MapEntries:
    """Flatten a map or list<map> column (any chunking or slicing) into its entries."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    outer: pa.ListArray | None = None
    maps = arr
    # A MapArray is also a ListArray: test the type, not the class.
    if not pa.types.is_map(arr.type):
        outer = arr
        lo, hi = int(arr.offsets[0].as_py()), int(arr.offsets[-1].as_py())
        maps = arr.values.slice(lo, hi - lo)
    offsets = maps.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    # .keys/.items ignore a slice of the map array; cut them to the slice's range.
    keys, items = maps.keys.slice(start, end - start), maps.items.slice(start, end - start)
    return MapEntries(arr.type, outer, maps, offsets - start, keys, items)
