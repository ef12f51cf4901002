"""One sentence of an external evaluation set, with the values planted in it and the negatives that
must come out unchanged; read and written as JSON lines so a seeded sample can be kept as data."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evaluation.pii.corpus import Planted


@dataclass(frozen=True)
class Negative:
    """A telemetry-like value that masking must leave as it is."""

    kind: str
    value: str


@dataclass(frozen=True)
class ExternalSample:
    """One sentence of an external set: where it came from, its text, what it plants and what must stay."""

    source: str  # the set: "presidio-evaluator" | "faker"
    locale: str  # the Faker locale that made the values
    text: str
    planted: tuple[Planted, ...]
    negatives: tuple[Negative, ...] = ()


def to_json(sample: ExternalSample) -> str:
    """The sample as one JSON line."""
    return json.dumps(
        {
            "source": sample.source,
            "locale": sample.locale,
            "text": sample.text,
            "planted": [[p.entity, p.value] for p in sample.planted],
            "negatives": [[n.kind, n.value] for n in sample.negatives],
        },
        ensure_ascii=False,
    )


def from_json(line: str) -> ExternalSample:
    """The sample a JSON line written by ``to_json`` holds."""
    row = json.loads(line)
    return ExternalSample(
        row["source"],
        row["locale"],
        row["text"],
        tuple(Planted(e, v) for e, v in row["planted"]),
        tuple(Negative(k, v) for k, v in row["negatives"]),
    )


def write_jsonl(samples: Iterable[ExternalSample], path: Path) -> None:
    """Write ``samples`` to ``path``, one JSON line each."""
    path.write_text("".join(to_json(s) + "\n" for s in samples), encoding="utf-8")


def read_jsonl(path: Path) -> list[ExternalSample]:
    """The samples of a JSON-lines file written by ``write_jsonl``."""
    return [from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
