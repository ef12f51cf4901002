"""Tests for sovtel.records: schemas, defaults, and the flat view of attribute maps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sovtel.records import ATTRIBUTES, SPAN_SCHEMA, Signal, map_entries, table_from_columns


def test_absent_columns_get_defaults() -> None:
    """A table built from a few columns has the full schema with empty/zero/null defaults."""
    t = table_from_columns(Signal.TRACES, {"trace_id": ["a" * 32]})
    assert t.schema == SPAN_SCHEMA
    row = t.to_pylist()[0]
    assert (row["span_name"], row["input_tokens"], row["ttft_s"], row["span_attributes"]) == ("", 0, None, [])


@pytest.mark.parametrize(("columns", "needle"), [
    ({"nope": [1]}, "unknown traces column"),
    ({"trace_id": ["a"], "span_id": ["b", "c"]}, "different lengths"),
    ({"input_tokens": ["many"]}, "input_tokens"),
])
def test_bad_columns_are_named(columns: dict[str, list[object]], needle: str) -> None:
    """Unknown columns, ragged lengths and values of the wrong type raise ValueError naming the column."""
    with pytest.raises(ValueError, match=needle):
        table_from_columns(Signal.TRACES, columns)


@pytest.mark.parametrize("nested", [False, True])
def test_map_entries_round_trip_on_sliced_columns(nested: bool) -> None:
    """Entries of a sliced map or list<map> column rebuild to the same values, and keep drops entries."""
    rows = [[("a", "1"), ("b", "2")], [], [("c", "3")], [("d", "4"), ("e", "5")]]
    arr = pa.array([[r] for r in rows], type=pa.list_(ATTRIBUTES)) if nested else pa.array(rows, type=ATTRIBUTES)
    sliced = arr.slice(1, 3)
    entries = map_entries(pa.chunked_array([sliced]))
    assert entries.keys.to_pylist() == ["c", "d", "e"]
    assert entries.rebuild(entries.keys, entries.items).to_pylist() == sliced.to_pylist()
    kept = entries.rebuild(entries.keys, entries.items, np.array([True, False, True])).to_pylist()
    expected = [[], [("c", "3")], [("e", "5")]]
    assert kept == ([[r] for r in expected] if nested else expected)
