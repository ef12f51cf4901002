"""The column scan of the ``pii`` processor: every value of a batch's text and attribute columns,
deduplicated batch-wide, and each column rebuilt from the masked values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Column:
    """One column's values prepared for masking: unique (value, key) pairs and where they sit."""

    name: str
    kind: Literal["text", "map", "list_map"]
    slots: np.ndarray  # per element: index into the batch-wide unique list
    rows: np.ndarray  # per element: row number
    rebuild: Any  # callable(new_values: pa.Array) -> pa.ChunkedArray


def slot_ids(values: pa.Array, keys: pa.Array | str, unique: dict[tuple[str, str], int]) -> np.ndarray:
    """Index of each (value, key) in the batch-wide unique list, adding new pairs; empty values → -1.

    Attribute maps repeat the same pairs on every row (resource attributes above all), so pairs are
    deduplicated with Arrow dictionary encoding first and Python only sees each distinct pair once.
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    venc = pc.dictionary_encode(values)
    vdict = venc.dictionary.to_pylist()
    vidx = venc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if isinstance(keys, str):
        kdict, kidx = [keys], np.zeros(len(vidx), dtype=np.int64)
    else:
        kenc = pc.dictionary_encode(keys)
        kdict = kenc.dictionary.to_pylist()
        kidx = kenc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pair_codes, inverse = np.unique(kidx * len(vdict) + vidx, return_inverse=True)
    pair_slots = np.empty(len(pair_codes), dtype=np.int64)
    for j, code in enumerate(pair_codes.tolist()):
        k, v = kdict[code // len(vdict)], vdict[code % len(vdict)]
        if not v:
            pair_slots[j] = -1
            continue
        slot = unique.get((v, k))
        if slot is None:
            slot = unique[(v, k)] = len(unique)
        pair_slots[j] = slot
    return pair_slots[inverse.reshape(-1)]


def _take_masked(new_values: pa.Array, slots: np.ndarray, original: pa.Array) -> pa.Array:
    """The masked value per element (the original where the element was empty)."""
    if not len(slots):
        return original
    safe = np.where(slots < 0, 0, slots)
    taken = new_values.take(pa.array(safe)) if len(new_values) else pa.array([""] * len(slots), type=pa.string())
    return pc.if_else(pa.array(slots < 0), original, taken)


def prepare_text(table: pa.Table, name: str, unique: dict[tuple[str, str], int]) -> Column:
    """A plain text column prepared for masking; its values join the batch-wide ``unique`` pairs."""
    arr = table.column(name).combine_chunks()
    slots = slot_ids(arr, name, unique)
    keep = slots >= 0

    def rebuild(new_values: pa.Array) -> pa.ChunkedArray:
        return pa.chunked_array([_take_masked(new_values, slots, arr)], type=pa.string())

    return Column(name, "text", slots[keep], np.flatnonzero(keep), rebuild)


def _map_parts(arr: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Offsets rebased to zero and the keys/items of the map array's own range."""
    offsets = arr.offsets.to_numpy(zero_copy_only=False)
    start, end = int(offsets[0]), int(offsets[-1])
    keys, items = arr.keys, arr.items
    if start != 0 or len(keys) != end:
        keys, items = keys.slice(start, end - start), items.slice(start, end - start)
    return offsets - start, keys, items


def prepare_map(table: pa.Table, name: str, unique: dict[tuple[str, str], int]) -> Column:
    """A map (or list of maps) column prepared for masking its values, keys as their context."""
    column = table.column(name).combine_chunks()
    field_type = table.schema.field(name).type
    if isinstance(column, pa.MapArray):
        offsets, keys, items = _map_parts(column)
        entry_rows = np.repeat(np.arange(len(column)), np.diff(offsets))
        list_offsets = None
        inner_offsets = offsets
    else:  # list<map>: maps inside lists (span events)
        list_offsets_raw = column.offsets.to_numpy(zero_copy_only=False)
        inner_map = column.values.slice(int(list_offsets_raw[0]), int(list_offsets_raw[-1] - list_offsets_raw[0]))
        list_offsets = list_offsets_raw - list_offsets_raw[0]
        inner_offsets, keys, items = _map_parts(inner_map)
        map_rows = np.repeat(np.arange(len(column)), np.diff(list_offsets))
        entry_rows = np.repeat(map_rows, np.diff(inner_offsets))
        null_maps = inner_map.is_null()
    slots = slot_ids(items, keys, unique)
    keep = slots >= 0

    def rebuild(new_values: pa.Array) -> pa.ChunkedArray:
        new_items = _take_masked(new_values, slots, items)
        if list_offsets is None:
            out = pa.MapArray.from_arrays(
                pa.array(inner_offsets, type=pa.int32()), keys, new_items, type=field_type, mask=column.is_null()
            )
        else:
            inner_type = field_type.value_type
            maps = pa.MapArray.from_arrays(
                pa.array(inner_offsets, type=pa.int32()), keys, new_items, type=inner_type, mask=null_maps
            )
            out = pa.ListArray.from_arrays(
                pa.array(list_offsets, type=pa.int32()), maps, type=field_type, mask=column.is_null()
            )
        return pa.chunked_array([out], type=field_type)

    return Column(name, "map" if list_offsets is None else "list_map", slots[keep], entry_rows[keep], rebuild)
