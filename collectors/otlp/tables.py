"""Decoded records to Arrow tables of exactly a record schema: the assembly both decode paths share.

Ids, timestamps, enum names, resource columns and defaults are built here once, so the columnar
and the exact path of every signal cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collectors import semconv
from collectors.otlp import wire
from collectors.otlp.attributes import (
    BoolArray,
    Candidate,
    IntArray,
    Projection,
    attributes_from_messages,
    project,
    resolve,
)
from collectors.otlp.limits import Clock
from sovtel.records import TIMESTAMP

INT64_MAX = np.uint64(2**63 - 1)
# Columns a record may set itself, overriding its resource's value (see semconv).
_RECORD_OVER_RESOURCE = ("tenant_id", "tier")
_RESOURCE_COLUMNS = ("service_name", "node", "tenant_id", "tier")


# Reasons (with their records' places) an answer quotes; the count always covers every record.
MAX_REASONS = 5

R = TypeVar("R", bound="Records")


class DecodeError(ValueError):
    """The payload is not a valid OTLP export request; the message says what is wrong and where."""


class Report:
    """What a request holds that will not be stored as sent: records rejected (with why), values removed.

    Rejected records are left out of the table; the receiver reports them through OTLP partial
    success. Removed values (truncated attributes, replaced times) are counted for telemetry.
    """

    def __init__(self) -> None:
        self.mask: BoolArray | None = None  # table rows to leave out
        self.rejected: Counter[str] = Counter()  # reason -> records
        self.removed: Counter[str] = Counter()  # reason -> values
        self._examples: list[tuple[int, str]] = []  # (record index, "where: what")

    def reject_rows(self, bad: BoolArray, reason: str, describe: Callable[[int], str]) -> None:
        """Leave out the rows where ``bad`` holds (a row rejected before counts once, under its first reason)."""
        if self.mask is None:
            self.mask = np.zeros(len(bad), np.bool_)
        new = np.flatnonzero(bad & ~self.mask)
        if not len(new):
            return
        self.mask[new] = True
        self.rejected[reason] += len(new)
        # The first few of each reason suffice: together they hold the first few of all.
        self._examples.extend((i, describe(i)) for i in new[:MAX_REASONS].tolist())

    def reject_records(self, count: int, reason: str, index: int, text: str) -> None:
        """Count ``count`` records that never became rows (e.g. the data points of a corrupt metric)."""
        self.rejected[reason] += count
        if len(self._examples) < 4 * MAX_REASONS:
            self._examples.append((index, text))

    @property
    def total(self) -> int:
        """Records rejected."""
        return sum(self.rejected.values())

    def reasons(self) -> tuple[str, ...]:
        """The first few reasons, in the order of the records in the request."""
        return tuple(text for _i, text in sorted(self._examples)[:MAX_REASONS])


@dataclass(frozen=True)
class Decoded:
    """A decoded export request: the table of the records kept, and what was rejected or changed, and why."""

    table: pa.Table
    rejected: int = 0
    reasons: tuple[str, ...] = ()  # the first few, each "where: what"
    rejected_by: Mapping[str, int] = field(default_factory=dict)  # reason -> records
    removed: Mapping[str, int] = field(default_factory=dict)  # reason -> values removed or times replaced

    def summary(self, noun: str) -> str:
        """'2 of 7 spans rejected: <first reasons>' (empty if nothing was rejected)."""
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        tail = f"; and {more} more" if more > 0 else ""
        total = self.table.num_rows + self.rejected
        return f"{self.rejected} of {total} {noun} rejected: {'; '.join(self.reasons)}{tail}"


def finish(table: pa.Table, report: Report) -> Decoded:
    """The table without its rejected rows, with the report."""
    if report.mask is not None and report.mask.any():
        table = table.filter(pa.array(~report.mask))
    return Decoded(table, report.total, report.reasons(), dict(report.rejected), dict(report.removed))


def merge(parts: Sequence[Decoded]) -> Decoded:
    """Consecutive slices of one request, decoded one by one, as the request's ``Decoded`` (the tables
    concatenated without copying, the reasons still the first few in request order)."""
    if len(parts) == 1:
        return parts[0]
    rejected: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    reasons: list[str] = []
    for p in parts:
        rejected.update(p.rejected_by)
        removed.update(p.removed)
        # Each slice's reasons are its first few in order, and slices are in order: so are these.
        reasons.extend(p.reasons[: MAX_REASONS - len(reasons)])
    table = pa.concat_tables([p.table for p in parts])
    return Decoded(table, sum(p.rejected for p in parts), tuple(reasons), dict(rejected), dict(removed))


# Records of a request are decoded in slices of about this many serialized bytes: the transient
# memory of decoding (a multiple of the bytes decoded at once) is then bounded by the slice, not
# by the request; only the slices' tables accumulate. Large enough that the per-slice overhead is
# small against the work of a slice.
SLICE_BYTES = 1 << 20


@dataclass
class Slice:
    """Consecutive records of a request (in a buffer of their own), with the resources they belong to."""

    buffer: wire.Buffer
    resources: list[Sequence[KeyValue]]  # the attributes of the resources of these records
    per_resource: list[int]  # records of each of those resources
    blocks: list[tuple[int, int, int, int]]  # for Locator.add: where the records are in the request

    def locator(self, outer: str, middle: str, inner: str) -> Locator:
        """A Locator naming this slice's records by their places in the whole request."""
        locate = Locator(outer, middle, inner)
        for block in self.blocks:
            locate.add(*block)
        return locate


def slices(payload: bytes, layout: wire.Layout, slice_bytes: int | None = SLICE_BYTES) -> Iterator[Slice]:
    """The request's records in consecutive slices of at most ``slice_bytes`` (a record larger than that
    alone; ``None``: one slice). Yields at least one slice (empty for a request without records)."""
    n = len(layout.start)
    ends = np.cumsum(layout.end - layout.start)
    scope_first_record = np.zeros(len(layout.scope_resource) + 1, np.int64)
    np.cumsum(np.bincount(layout.record_scope, minlength=len(layout.scope_resource)), out=scope_first_record[1:])
    attributes = [r.attributes for r in layout.resources]
    i = 0
    while True:
        j = n
        if slice_bytes is not None and i < n:
            base = int(ends[i - 1]) if i else 0
            j = max(i + 1, int(np.searchsorted(ends, base + slice_bytes, side="right")))
        scope = layout.record_scope[i:j]
        # Runs of records of one scope block, and of one resource block (records are in request order).
        scope_runs = np.flatnonzero(np.diff(scope, prepend=-1)) if j > i else np.zeros(0, np.int64)
        resource = layout.scope_resource[scope]
        resource_runs = np.flatnonzero(np.diff(resource, prepend=-1)) if j > i else np.zeros(0, np.int64)
        blocks = [
            (int(layout.scope_resource[sc]), int(layout.scope_first[sc]), count, i + at - int(scope_first_record[sc]))
            for sc, at, count in zip(
                scope[scope_runs].tolist(), scope_runs.tolist(), np.diff(scope_runs, append=j - i).tolist(), strict=True
            )
        ]
        yield Slice(
            wire.Buffer.of(payload, layout.start[i:j], layout.end[i:j]),
            [attributes[r] for r in resource[resource_runs].tolist()],
            np.diff(resource_runs, append=j - i).tolist(),
            blocks,
        )
        i = j
        if i >= n:
            return


def sliced_records(
    payload: bytes, slice_bytes: int | None, records_of: Callable[[Slice], R]
) -> Iterator[R]:
    """The columnar path of a signal: one shallow parse of the request, then ``records_of`` each of its
    ``slices`` in turn (lazily, so each slice's temporaries are gone before the next)."""
    layout = wire.layout(payload, Resource, InstrumentationScope)
    for part in slices(payload, layout, slice_bytes):
        yield records_of(part)


def tabled(parts: Iterable[R], table_of: Callable[[R], pa.Table]) -> Decoded:
    """Each part's table (``table_of``) without its rejected rows, merged as one request's Decoded."""
    return merge([finish(table_of(p), p.report) for p in parts])


def slice_fields(part: Slice, records: Records) -> tuple[wire.Buffer, wire.Fields]:
    """Give ``records`` the slice's resources and record count; return the slice's buffer and the
    top-level fields of its records."""
    records.resources, records.per_resource = part.resources, part.per_resource
    b = part.buffer
    records.n = len(b.start)
    return b, wire.scan(b.array, b.start, b.end)


class Locator:
    """Maps a flat record index back to its place in the request, for error messages."""

    def __init__(self, outer: str, middle: str, inner: str) -> None:
        self.names = (outer, middle, inner)
        # (outer index, middle index, records, index of the first of them in its middle block)
        self.blocks: list[tuple[int, int, int, int]] = []

    def add(self, outer: int, middle: int, records: int, first: int = 0) -> None:
        self.blocks.append((outer, middle, records, first))

    def __call__(self, index: int) -> str:
        for outer, middle, records, first in self.blocks:
            if index < records:
                a, b, c = self.names
                return f"{a}[{outer}].{b}[{middle}].{c}[{first + index}]"
            index -= records
        return f"record {index}"


def nanos(values: Iterable[int] | npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Nanosecond times as a flat uint64 array."""
    return np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.uint64).reshape(-1)


def timestamps(nanos: npt.NDArray[np.uint64]) -> pa.Array:
    """Nanosecond times as a timestamp column."""
    # uint64 nanoseconds past 2262 do not fit a timestamp; clamp rather than wrap to the past.
    return pa.array(np.minimum(nanos, INT64_MAX).astype(np.int64), TIMESTAMP)


def enum_names(codes: IntArray, names: tuple[str, ...]) -> pa.Array:
    """Enum numbers as their names."""
    arr = np.asarray(codes, dtype=np.int64).reshape(-1)
    known = (arr >= 0) & (arr < len(names))
    # An enum value from a newer protocol version reads as the default name rather than failing.
    return pa.array(names, pa.string()).take(pa.array(np.where(known, arr, 0)))


def typed_columns(
    n: int,
    schema: pa.Schema,
    projections: Iterable[Projection],
    only: Iterable[str] | None = None,
) -> dict[str, pa.Array]:
    """The typed columns the projections found candidates for (or ``only`` these), resolved."""
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


def schema_table(schema: pa.Schema, n: int, columns: Mapping[str, pa.Array]) -> pa.Table:
    """The columns as a table of exactly ``schema``: missing ones empty, nulls defaulted."""
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


class Resources:
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
            for c, a in typed_columns(len(resources), schema, [proj], _RESOURCE_COLUMNS).items()
        }

    def under(self, record_columns: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        """Record-level tenant and tier where present, the resource's otherwise."""
        out = dict(self.columns)
        for c in _RECORD_OVER_RESOURCE:
            if c in record_columns and record_columns[c].null_count < len(record_columns[c]):
                out[c] = pc.coalesce(record_columns[c], self.columns[c])
        return out


def hex_from_messages(ids: Sequence[bytes], *, width: int, optional: bool, field: str, records: Records) -> pa.Array:
    """Ids as lower-case hex strings, built in one pass; a record whose id has a wrong length is rejected."""
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    check_id_lengths(lengths, width=width, optional=optional, field=field, records=records)
    return hex_array(lengths, b"".join(ids).hex().encode("ascii"))


def check_id_lengths(lengths: IntArray, *, width: int, optional: bool, field: str, records: Records) -> BoolArray:
    """Reject (in the records' report) those whose id has the wrong length; returns which they are."""
    bad: BoolArray = lengths != width
    if optional:
        bad &= lengths != 0
    if bad.any():
        locate = records.locate
        records.report.reject_rows(
            bad, "invalid_id", lambda i: f"{locate(i)}.{field}: must be {width} bytes, got {int(lengths[i])}"
        )
    return bad


def hex_array(lengths: IntArray, text: bytes) -> pa.Array:
    """Concatenated hex text as a string column, ``lengths[i]`` bytes per id."""
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths * 2, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def hex_from_wire(
    b: wire.Buffer,
    f: wire.Fields,
    number: int,
    n: int,
    *,
    width: int,
    optional: bool,
    field: str,
    records: Records,
) -> pa.Array:
    """An id field of scanned records as lower-case hex; a record whose id has a wrong length is rejected."""
    sel = f.singular(number, wire.WT_LEN)
    lengths = np.zeros(n, np.int64)
    lengths[f.rec[sel]] = f.end[sel] - f.start[sel]
    bad = check_id_lengths(lengths, width=width, optional=optional, field=field, records=records)
    if bad.any():
        lengths[bad] = 0  # the row is left out; an empty id keeps the column well formed meanwhile
        sel = sel[~bad[f.rec[sel]]]
    present = sel[f.end[sel] > f.start[sel]]
    return hex_array(lengths, b.hex(f.start[present], width))


def spread(n: int, rows: IntArray, values: pa.Array) -> pa.Array:
    """``values`` placed at ``rows`` of an n-row column, null elsewhere."""
    if len(rows) == n:
        return values
    index = np.full(n, -1, np.int64)
    index[rows] = np.arange(len(rows), dtype=np.int64)
    return values.take(pa.array(index, mask=index < 0))


def spread_ints(n: int, rows: IntArray, values: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
    """``values`` placed at ``rows`` of an n-long array, zero elsewhere."""
    out = np.zeros(n, dtype)
    out[rows] = values
    return out


class Records:
    """What both decode paths extract from a request, before the shared table assembly."""

    def __init__(self, locate: Locator, report: Report | None = None) -> None:
        self.locate = locate
        self.report = report if report is not None else Report()
        self.resources: list[Sequence[KeyValue]] = []
        self.per_resource: list[int] = []
        self.n = 0


def message_records(out: Records, blocks: Iterable[Any], scopes: str, records: str) -> Iterator[Any]:
    """The exact path's walk: each record message of a parsed request's resource ``blocks`` (their
    ``scopes`` field, and those scopes' ``records`` field) in order, while ``out`` gets each resource's
    attributes, record count and places (once the walk is done, ``out.n`` counts them all)."""
    for r, block in enumerate(blocks):
        out.resources.append(block.resource.attributes)
        count = 0
        for s, scope in enumerate(getattr(block, scopes)):
            items = getattr(scope, records)
            out.locate.add(r, s, len(items))
            count += len(items)
            yield from items
        out.per_resource.append(count)
        out.n += count

def beyond_cap(counts: IntArray, cap: int) -> BoolArray | None:
    """For elements grouped by owner in order (``counts[i]`` for owner i): which lie beyond the first ``cap``
    of their owner; None if no owner has more than ``cap``."""
    if not len(counts) or int(counts.max()) <= cap:
        return None
    starts = np.cumsum(counts) - counts
    rank = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    return rank >= cap


def cap_fields(sel: IntArray, counts: IntArray, cap: int, report: Report, reason: str) -> tuple[IntArray, IntArray]:
    """``sel`` (fields grouped by record, ``counts`` per record) without those beyond ``cap`` per record,
    the ones left out counted as removed for ``reason``."""
    over = beyond_cap(counts, cap)
    if over is None:
        return sel, counts
    report.removed[reason] += int(over.sum())
    return sel[~over], np.minimum(counts, cap)


def capped(items: Sequence[Any], cap: int, report: Report, reason: str) -> Sequence[Any]:
    """The first ``cap`` of ``items``, counting the rest as removed."""
    if len(items) <= cap:
        return items
    report.removed[reason] += len(items) - cap
    return items[:cap]


def with_entry(maps: pa.Array, rows: IntArray, key: str, values: Sequence[str]) -> pa.Array:
    """``maps`` (a map column) with the entry ``key`` → ``values[j]`` appended to row ``rows[j]``."""
    if not len(rows):
        return maps
    offsets = maps.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(offsets)
    extra = np.zeros(len(lengths), np.int64)
    extra[rows] = 1
    new_offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths + extra, out=new_offsets[1:])
    # Old entries keep their order within the row; each new one goes after its row's old ones.
    old = np.arange(int(offsets[0]), int(offsets[-1]), dtype=np.int64)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    source = np.empty(int(new_offsets[-1]), np.int64)
    source[new_offsets[owner] + (old - offsets[owner])] = old
    source[new_offsets[rows] + lengths[rows]] = len(maps.keys) + np.arange(len(rows), dtype=np.int64)
    keys = pa.concat_arrays([maps.keys, pa.array([key] * len(rows), pa.string())]).take(pa.array(source))
    items = pa.concat_arrays([maps.items, pa.array(list(values), pa.string())]).take(pa.array(source))
    return pa.MapArray.from_arrays(pa.array(new_offsets.astype(np.int32)), keys, items, type=maps.type)


def replace_times(
    t: npt.NDArray[np.uint64], clock: Clock, report: Report, *, zero_reason: str | None = "timestamp_clamped:zero"
) -> tuple[npt.NDArray[np.uint64], IntArray]:
    """Times with those missing (0) or later than ``clock.latest`` replaced by ``clock.now``, counted.

    Returns the new times and the rows replaced. ``zero_reason`` None leaves zeros alone (for a caller
    with its own rule for missing times).
    """
    future = t > np.uint64(clock.latest)
    zero = t == 0 if zero_reason is not None else np.zeros(len(t), np.bool_)
    bad = future | zero
    if not bad.any():
        return t, np.zeros(0, np.int64)
    # Rows already rejected are not stored, so nothing of theirs is counted as replaced.
    kept = ~report.mask if report.mask is not None else np.ones(len(t), np.bool_)
    if zero_reason is not None and (zero & kept).any():
        report.removed[zero_reason] += int((zero & kept).sum())
    if (future & kept).any():
        report.removed["timestamp_clamped:future"] += int((future & kept).sum())
    return np.where(bad, np.uint64(clock.now), t).astype(np.uint64), np.flatnonzero(bad)

