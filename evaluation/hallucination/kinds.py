"""The fact templates ("kinds") and answer categories of the hallucination evaluation set, read from
``data/kinds.yaml`` and ``data/answers.yaml`` beside this module."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluation.datafiles import DataFileError, load, mapping, scalars, text, texts

_PACKAGE = "evaluation.hallucination"
_SLOT = re.compile(r"\{(\w+)(\|number)?\}")
_TEMPLATES = ("context", "question", "copy", "paraphrase", "partial", "negation", "addition",
              "absent_question", "fabricated")  # fmt: skip


@dataclass(frozen=True)
class ToolShape:
    """How a tool kind's evidence looks: one JSON record per fact, listed under ``wrap`` when given.

    In ``record`` a value ``"{slot}"`` is the slot's value with its type, ``"{slot|number}"`` the slot
    read as a number (thousands commas dropped), and any other value is literal.
    """

    record: Mapping[str, Any]
    wrap: str = ""

    def result(self, records: list[dict[str, Any]]) -> Any:
        """The tool result for ``records`` (slot values per fact)."""
        rows = [_render(self.record, r) for r in records]
        return {self.wrap: rows} if self.wrap else rows


def _render(shape: object, values: Mapping[str, Any]) -> Any:
    if isinstance(shape, dict):
        return {k: _render(v, values) for k, v in shape.items()}
    if isinstance(shape, str) and (m := _SLOT.fullmatch(shape)):
        value = values[m.group(1)]
        return float(str(value).replace(",", "")) if m.group(2) else value
    return shape


@dataclass(frozen=True)
class Kind:
    """A fact template: how the fact is written in a document, asked about, answered faithfully and falsely."""

    name: str
    domain: str
    split: str  # dev (the threshold is calibrated on it) | test (held-out domains)
    subjects: tuple[str, ...]
    slots: Mapping[str, tuple[Any, ...]]
    number_slot: str
    context: tuple[str, ...]
    question: tuple[str, ...]
    copy: tuple[str, ...]
    paraphrase: tuple[str, ...]
    partial: tuple[str, ...]
    negation: tuple[str, ...]
    addition: tuple[str, ...]
    absent_question: tuple[str, ...]
    fabricated: tuple[str, ...]
    absent_topic: str
    tool: ToolShape | None = None


def _tool(value: object, where: str) -> ToolShape | None:
    if value is None:
        return None
    m = mapping(value, where)
    wrap = m.get("wrap", "")
    return ToolShape(record=mapping(m.get("record"), f"{where}.record"), wrap=text(wrap, f"{where}.wrap"))


def _kind(value: object, where: str) -> Kind:
    m = mapping(value, where)
    name = text(m.get("name"), f"{where}.name")
    where = f"kinds.yaml:{name}"
    tool = _tool(m.get("tool"), f"{where}.tool")
    # A tool kind's evidence is its tool result, so it has no document sentences.
    templates = {
        f: () if f == "context" and tool is not None and f not in m else texts(m.get(f), f"{where}.{f}")
        for f in _TEMPLATES
    }
    slots = {s: scalars(v, f"{where}.slots.{s}") for s, v in mapping(m.get("slots"), f"{where}.slots").items()}
    number_slot = text(m.get("number_slot"), f"{where}.number_slot")
    split = text(m.get("split"), f"{where}.split")
    if number_slot not in slots:
        raise DataFileError(f"{where}.number_slot: {number_slot!r} is not a slot")
    if split not in ("dev", "test"):
        raise DataFileError(f"{where}.split: expected dev or test, got {split!r}")
    return Kind(
        name=name,
        domain=text(m.get("domain"), f"{where}.domain"),
        split=split,
        subjects=texts(m.get("subjects"), f"{where}.subjects"),
        slots=slots,
        number_slot=number_slot,
        absent_topic=text(m.get("absent_topic"), f"{where}.absent_topic"),
        tool=tool,
        **templates,
    )


_kinds = load(_PACKAGE, "kinds.yaml").get("kinds")
if not isinstance(_kinds, list) or not _kinds:
    raise DataFileError("kinds.yaml:kinds: expected a non-empty list")
# File order is generation order: reordering the kinds changes every generated set.
KINDS: tuple[Kind, ...] = tuple(_kind(k, f"kinds.yaml:kinds[{i}]") for i, k in enumerate(_kinds))

# Held-out domains: the threshold is calibrated on DEV_KINDS and reported on the rest.
DEV_KINDS: frozenset[str] = frozenset(k.name for k in KINDS if k.split == "dev")


def _label(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise DataFileError(f"{where}: a label is 0 (grounded) or 1 (hallucinated), got {value!r}")
    return value


_answers = load(_PACKAGE, "answers.yaml")
# label 0 = grounded (no hallucination), 1 = hallucinated
CATEGORIES: Mapping[str, int] = {
    c: _label(label, f"answers.yaml:categories.{c}")
    for c, label in mapping(_answers.get("categories"), "answers.yaml:categories").items()
}
REFUSALS: tuple[str, ...] = texts(_answers.get("refusals"), "answers.yaml:refusals")
