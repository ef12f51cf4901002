"""Tests for the fact templates as loaded from the data files: slots, splits and tool results."""

from __future__ import annotations

import string

import pytest

from evaluation.hallucination.kinds import CATEGORIES, KINDS, REFUSALS, Kind, ToolShape


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_templates_use_only_their_slots(kind: Kind) -> None:
    """Every template of a kind names only the subject, its slots, and the long date derived from a date."""
    known = {"s", *kind.slots, *(("date_long",) if "date" in kind.slots else ())}
    for group in (
        kind.context,
        kind.question,
        kind.copy,
        kind.paraphrase,
        kind.partial,
        kind.negation,
        kind.absent_question,
        kind.fabricated,
    ):
        for template in group:
            assert _fields(template) <= known, template


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_can_be_answered_wrongly(kind: Kind) -> None:
    """The number slot has a third value and there is a third subject, for wrong-number and swapped answers."""
    assert len(kind.slots[kind.number_slot]) >= 3
    assert len(kind.subjects) >= 3
    assert (kind.tool is None) == bool(kind.context)


def test_refusals_and_categories() -> None:
    """Refusals only name the topic; both labels are used."""
    assert all(_fields(r) <= {"topic"} for r in REFUSALS)
    assert set(CATEGORIES.values()) == {0, 1}


def test_tool_shape_keeps_types_and_reads_numbers() -> None:
    """A lone slot keeps its type, a ``|number`` slot becomes a float, other values are literal."""
    shape = ToolShape(
        record={"id": "{s}", "n": "{n}", "amount": "{amount|number}", "unit": "EUR", "nested": {"m": "{s}"}},
        wrap="rows",
    )
    assert shape.result([{"s": "A-1", "n": 3, "amount": "1,234.50"}]) == {
        "rows": [{"id": "A-1", "n": 3, "amount": 1234.5, "unit": "EUR", "nested": {"m": "A-1"}}]
    }
    assert ToolShape(record={"x": "{s}"}).result([{"s": 1}, {"s": 2}]) == [{"x": 1}, {"x": 2}]
