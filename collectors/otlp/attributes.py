"""Attributes in columnar form: every key and value of a request in a few arrays, then projected.

Both decode paths (``wire`` from raw payloads, ``from_messages`` from protobuf objects) produce the
same ``Attributes``; projection onto typed columns and attribute maps is shared, so the two paths
cannot drift apart.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collectors.semconv import COLUMN_KINDS, Kind
from sovtel.records import ATTRIBUTES

UINT32_MAX = 2**32 - 1
STRING_LIST = pa.list_(pa.string())


class Cls(enum.IntEnum):
    """The class of an AnyValue, in the order their text is concatenated."""

    EMPTY = 0
    STRING = 1
    BOOL = 2
    INT = 3
    DOUBLE = 4
    OTHER = 5  # arrays, key-value lists, bytes: rare, kept as protobuf messages


_N_CLS = len(Cls)
_WHICH_CLS = {
    "string_value": Cls.STRING,
    "bool_value": Cls.BOOL,
    "int_value": Cls.INT,
    "double_value": Cls.DOUBLE,
    "array_value": Cls.OTHER,
    "kvlist_value": Cls.OTHER,
    "bytes_value": Cls.OTHER,
}

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Others(Protocol):
    """The arrays, key-value lists and bytes among some Values, decoded only when asked for."""

    def __len__(self) -> int: ...

    def message(self, i: int) -> AnyValue:
        """The i-th such value as a protobuf AnyValue."""
        ...

    def string_lists(self, idx: IntArray) -> tuple[BoolArray, pa.Array]:
        """For the values at ``idx``: which are arrays, and those arrays' elements as text."""
        ...


class MessageOthers:
    """``Others`` over protobuf messages already decoded (the exact path)."""

    def __init__(self, messages: list[AnyValue]) -> None:
        self.messages = messages

    def __len__(self) -> int:
        return len(self.messages)

    def message(self, i: int) -> AnyValue:
        """The i-th value."""
        return self.messages[i]

    def string_lists(self, idx: IntArray) -> tuple[BoolArray, pa.Array]:
        """Arrays among the values at ``idx``, as lists of element text."""
        return string_lists_of(self, idx)


def string_lists_of(others: Others, idx: IntArray) -> tuple[BoolArray, pa.Array]:
    """The per-object way to answer ``Others.string_lists``."""
    ok = np.zeros(len(idx), np.bool_)
    lists: list[list[str]] = []
    for j, i in enumerate(idx.tolist()):
        v = others.message(i)
        if v.WhichOneof("value") == "array_value":
            lists.append([scalar_text(e) for e in v.array_value.values])
            ok[j] = True
    return ok, pa.array(lists, STRING_LIST)


@dataclass
class Values:
    """A sequence of AnyValues: a class per value and one typed column per class."""

    cls: npt.NDArray[np.uint8]
    strings: pa.Array
    bools: BoolArray
    ints: IntArray
    doubles: npt.NDArray[np.float64]
    others: Others
    _pos: IntArray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.cls)

    @property
    def pos(self) -> IntArray:
        """Each value's index within its class column."""
        if self._pos is None:
            self._pos = _class_positions(self.cls)
        return self._pos

    def text(self, idx: IntArray | None = None) -> pa.Array:
        """The values at ``idx`` (default: all), in order, as strings (see ``scalar_text``).

        Only the values asked for are converted: arrays, maps and bytes cost a Python call each.
        """
        n = len(self.cls)
        if idx is None:
            idx = np.arange(n, dtype=np.int64)
        if len(self.strings) == n:
            return self.strings if len(idx) == n else self.strings.take(pa.array(idx))
        cls = self.cls[idx]
        pos = self.pos[idx]
        pieces = []
        for c in Cls:
            p = pos[cls == c]
            if not len(p):
                continue
            if c is Cls.EMPTY:
                pieces.append(pa.array([""] * len(p), pa.string()))
            elif c is Cls.STRING:
                pieces.append(self.strings.take(pa.array(p)))
            elif c is Cls.BOOL:
                pieces.append(pa.array(np.where(self.bools[p], "true", "false").tolist(), pa.string()))
            elif c is Cls.INT:
                pieces.append(pa.array(self.ints[p], pa.int64()).cast(pa.string()))
            elif c is Cls.DOUBLE:
                # Arrow's shortest round-trip form, the same as float_text.
                pieces.append(pa.array(self.doubles[p], pa.float64()).cast(pa.string()))
            else:
                pieces.append(pa.array([other_text(self.others.message(i)) for i in p.tolist()], pa.string()))
        if len(pieces) == 1:
            return pieces[0]
        # The pieces are grouped by class; put each value back at its place.
        order = np.argsort(cls, kind="stable")
        back = np.empty(len(order), np.int64)
        back[order] = np.arange(len(order), dtype=np.int64)
        return pa.concat_arrays(pieces).take(pa.array(back))


@dataclass
class Attributes:
    """Key-value lists of many owners (spans, events, records) flattened: ``counts[i]`` pairs per owner."""

    counts: IntArray
    keys: pa.Array
    values: Values

    @property
    def owners(self) -> IntArray:
        """The owner index of every pair."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)


def _class_positions(cls: npt.NDArray[np.uint8]) -> IntArray:
    n = len(cls)
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls, minlength=_N_CLS)
    starts = np.zeros(_N_CLS, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    return pos


def float_text(x: float) -> str:
    """A double as text, in the shortest form that reads back exactly ('0.1', '1', '1e+20', 'nan')."""
    return str(pa.scalar(x, pa.float64()).cast(pa.string()).as_py())


def _json_value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        x = v.double_value
        # JSON has no NaN or infinities; keep them readable instead of emitting invalid JSON.
        return x if math.isfinite(x) else float_text(x)
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return [_json_value(e) for e in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _json_value(kv.value) for kv in v.kvlist_value.values}
    return None


def compact_json(obj: Any) -> str:
    """JSON without insignificant whitespace, non-ASCII kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def other_text(v: AnyValue) -> str:
    """Text of an array, key-value list (compact JSON) or bytes (lower-case hex) value."""
    which = v.WhichOneof("value")
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which is None:
        return ""
    return compact_json(_json_value(v))


def scalar_text(v: AnyValue) -> str:
    """Text of any AnyValue: strings as is, bools 'true'/'false', numbers in decimal, the rest via other_text."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return float_text(v.double_value)
    return other_text(v)


def values_from_messages(values: Iterable[AnyValue]) -> Values:
    """The exact (per-object) path: classify protobuf AnyValues."""
    cls: list[int] = []
    strings: list[str] = []
    bools: list[bool] = []
    ints: list[int] = []
    doubles: list[float] = []
    others: list[AnyValue] = []
    cls_append = cls.append
    which_cls = _WHICH_CLS
    for v in values:
        which = v.WhichOneof("value")
        if which == "string_value":
            cls_append(Cls.STRING)
            strings.append(v.string_value)
            continue
        c = which_cls.get(which, Cls.EMPTY) if which is not None else Cls.EMPTY
        cls_append(c)
        if c is Cls.BOOL:
            bools.append(v.bool_value)
        elif c is Cls.INT:
            ints.append(v.int_value)
        elif c is Cls.DOUBLE:
            doubles.append(v.double_value)
        elif c is Cls.OTHER:
            others.append(v)
    return Values(
        cls=np.array(cls, np.uint8),
        strings=pa.array(strings, pa.string()),
        bools=np.array(bools, np.bool_),
        ints=np.array(ints, np.int64),
        doubles=np.array(doubles, np.float64),
        others=MessageOthers(others),
    )


def attributes_from_messages(groups: Iterable[Sequence[KeyValue]]) -> Attributes:
    """The exact (per-object) path: flatten the KeyValue lists of many owners."""
    counts: list[int] = []
    keys: list[str] = []
    values: list[AnyValue] = []
    for group in groups:
        counts.append(len(group))
        for kv in group:
            keys.append(kv.key)
            values.append(kv.value)
    return Attributes(np.array(counts, np.int64), pa.array(keys, pa.string()), values_from_messages(values))


# A candidate for a typed column: (rank, row indices, values aligned with the rows).
Candidate = tuple[int, IntArray, pa.Array]


@dataclass
class Projection:
    """Typed-column candidates found in attributes, and the attributes left for the map column."""

    candidates: dict[str, list[Candidate]]
    rest: pa.Array  # map<string, string>, one entry per owner


def _to_uint32(values: Values, el: IntArray) -> tuple[BoolArray, pa.Array]:
    cls = values.cls[el]
    pos = values.pos[el]
    out = np.zeros(len(el), np.int64)
    ok = cls == Cls.INT
    out[ok] = values.ints[pos[ok]]
    for j in np.flatnonzero((cls == Cls.STRING) | (cls == Cls.DOUBLE)).tolist():
        if cls[j] == Cls.STRING:
            parsed = _parse_int(values.strings[int(pos[j])].as_py())
        else:
            parsed = _integral(float(values.doubles[pos[j]]))
        if parsed is not None:
            out[j] = max(min(parsed, UINT32_MAX), -1)
            ok[j] = True
    return ok, pa.array(np.clip(out[ok], 0, UINT32_MAX), pa.uint32())


def _parse_int(s: str) -> int | None:
    try:
        return int(s.strip())
    except ValueError:
        return _integral(_parse_float(s))


def _parse_float(s: str) -> float | None:
    try:
        return float(s.strip())
    except ValueError:
        return None


def _integral(x: float | None) -> int | None:
    if x is None or not math.isfinite(x) or x != int(x):
        return None
    return int(x)


def _to_float(values: Values, el: IntArray) -> tuple[BoolArray, pa.Array]:
    cls = values.cls[el]
    pos = values.pos[el]
    out = np.zeros(len(el), np.float64)
    is_d = cls == Cls.DOUBLE
    is_i = cls == Cls.INT
    out[is_d] = values.doubles[pos[is_d]]
    out[is_i] = values.ints[pos[is_i]]
    ok = is_d | is_i
    for j in np.flatnonzero(cls == Cls.STRING).tolist():
        parsed = _parse_float(values.strings[int(pos[j])].as_py())
        if parsed is not None:
            out[j] = parsed
            ok[j] = True
    return ok, pa.array(out[ok], pa.float64())


def _to_strlist(values: Values, el: IntArray) -> tuple[BoolArray, pa.Array]:
    cls = values.cls[el]
    pos = values.pos[el]
    is_s = cls == Cls.STRING
    is_o = cls == Cls.OTHER
    ok = is_s | is_o
    singles = pa.ListArray.from_arrays(
        pa.array(np.arange(int(is_s.sum()) + 1, dtype=np.int32)), values.strings.take(pa.array(pos[is_s]))
    )
    if not is_o.any():
        return ok, singles
    arrays_ok, arrays = values.others.string_lists(pos[is_o])
    ok[np.flatnonzero(is_o)[~arrays_ok]] = False
    # Reassemble in element order: singles and arrays are each in order; interleave by position.
    kept = np.flatnonzero(ok)
    from_array = is_o[kept]
    joined = pa.concat_arrays([singles.cast(STRING_LIST), arrays.cast(STRING_LIST)])
    order = np.empty(len(kept), np.int64)
    order[~from_array] = np.arange(int((~from_array).sum()), dtype=np.int64)
    order[from_array] = int((~from_array).sum()) + np.arange(int(from_array.sum()), dtype=np.int64)
    return ok, joined.take(pa.array(order))


def project(
    attrs: Attributes,
    table: Mapping[str, tuple[str, int]],
    rows_of_owner: IntArray | None = None,
) -> Projection:
    """Pull the keys of ``table`` out into typed-column candidates; the rest become a map per owner.

    A value that does not convert to its column's kind (e.g. a token count that is not a number)
    stays in the map, so nothing is silently lost. If a key repeats on one owner the last one wins.
    ``rows_of_owner`` maps owners to output rows (e.g. events to their spans).
    """
    keys = attrs.keys
    n_owners = len(attrs.counts)
    owners = attrs.owners
    table_keys = list(table)
    candidates: dict[str, list[Candidate]] = {}
    keep = np.ones(len(keys), np.bool_)
    as_text: list[tuple[str, int, IntArray]] = []  # string columns wait until the text is built
    if len(keys) and table_keys:
        slot = pc.index_in(keys, value_set=pa.array(table_keys, pa.string())).fill_null(-1).to_numpy()
        typed = np.flatnonzero(slot >= 0)
        # Group the typed elements by key once (a stable sort keeps each group in element order).
        typed_slots = slot[typed].astype(np.int16)
        order = np.argsort(typed_slots, kind="stable")
        typed = typed[order]
        sizes = np.bincount(typed_slots, minlength=len(table_keys))
        bounds = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=bounds[1:])
        for s in np.flatnonzero(sizes).tolist():
            el = typed[bounds[s] : bounds[s + 1]]
            column, rank = table[table_keys[s]]
            kind = COLUMN_KINDS[column]
            if kind is Kind.STR:
                keep[el] = False
                if (attrs.values.cls[el] == Cls.STRING).all():
                    # The usual case: string values need no conversion, take them directly.
                    vals = attrs.values.strings.take(pa.array(attrs.values.pos[el]))
                    _add_candidate(candidates, column, rank, el, vals, owners=owners, rows_of_owner=rows_of_owner)
                else:
                    as_text.append((column, rank, el))
                continue
            if kind is Kind.UINT32:
                ok, vals = _to_uint32(attrs.values, el)
            elif kind is Kind.FLOAT:
                ok, vals = _to_float(attrs.values, el)
            else:
                ok, vals = _to_strlist(attrs.values, el)
            el = el[ok]
            if len(el):
                keep[el] = False
                _add_candidate(candidates, column, rank, el, vals, owners=owners, rows_of_owner=rows_of_owner)
    # Text only for what is used: the map's values and the string columns of other types.
    needed = keep | _mask(len(keys), [el for _c, _r, el in as_text]) if as_text else keep
    idx = np.flatnonzero(needed)
    text = attrs.values.text(idx) if len(idx) else pa.array([], pa.string())
    place = np.cumsum(needed) - 1  # element -> its index in ``text``
    for column, rank, el in as_text:
        vals = text.take(pa.array(place[el]))
        _add_candidate(candidates, column, rank, el, vals, owners=owners, rows_of_owner=rows_of_owner)
    kept_text = text if len(idx) == len(keys) and keep.all() else text.filter(pa.array(keep[idx]))
    return Projection(candidates, _map_array(attrs, keep, owners, n_owners, kept_text))


def _mask(n: int, parts: list[IntArray]) -> BoolArray:
    m = np.zeros(n, np.bool_)
    for el in parts:
        m[el] = True
    return m


def _add_candidate(
    candidates: dict[str, list[Candidate]],
    column: str,
    rank: int,
    el: IntArray,
    vals: pa.Array,
    *,
    owners: IntArray,
    rows_of_owner: IntArray | None,
) -> None:
    rows = owners[el] if rows_of_owner is None else rows_of_owner[owners[el]]
    # Elements are in owner order, so the last of each run of equal rows is the last occurrence.
    last = np.append(rows[1:] != rows[:-1], True)
    if not last.all():
        rows = rows[last]
        vals = vals.filter(pa.array(last))
    candidates.setdefault(column, []).append((rank, rows, vals))


def _map_array(attrs: Attributes, keep: BoolArray, owners: IntArray, n_owners: int, items: pa.Array) -> pa.Array:
    """The kept pairs as one map per owner; ``items`` holds the kept values' text."""
    offsets = np.zeros(n_owners + 1, np.int32)
    if keep.all():
        np.cumsum(attrs.counts, out=offsets[1:])
        keys = attrs.keys
    else:
        np.cumsum(np.bincount(owners[keep], minlength=n_owners), out=offsets[1:])
        keys = attrs.keys.filter(pa.array(keep))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=ATTRIBUTES)


def resolve(n: int, column: str, candidates: Iterable[Candidate], type_: pa.DataType) -> pa.Array:
    """One column of ``n`` rows from its candidates: the lowest rank present on a row wins; null if none."""
    ordered = sorted(candidates, key=lambda c: -c[0])
    if not ordered:
        return pa.nulls(n, type_)
    if len(ordered) == 1 and len(ordered[0][1]) == n:
        # One key present on every row (rows are unique and ascending, so exactly 0..n-1).
        return ordered[0][2].cast(type_)
    index = np.full(n, -1, np.int64)
    base = 0
    for _rank, rows, _vals in ordered:
        index[rows] = base + np.arange(len(rows), dtype=np.int64)
        base += len(rows)
    joined = pa.concat_arrays([c[2].cast(type_) for c in ordered])
    return joined.take(pa.array(index, mask=index < 0))
