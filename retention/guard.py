"""The PII guard of the AI-Act store: every value bound for it is scanned with the privacy processors'
recognizers first, and a row that looks like personal data is refused with the field named (never the value).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from processors.recognizers.scan import Scanner

log = logging.getLogger("sovtel.retention.guard")

NerMode = Literal["auto", "required", "off"]

# A masking token the PII processor wrote (``<EMAIL_ADDRESS:3f2a9c>``) is already not personal data.
_TOKEN_PREFIX = "<"  # noqa: S105 - a markup prefix, not a password


class PersonalDataError(ValueError):
    """A value bound for the AI-Act store looks like personal data; it names the table and field only."""

    def __init__(self, table: str, field: str, entities: Sequence[str]) -> None:
        self.table = table
        self.field = field
        self.entities = tuple(sorted(set(entities)))
        super().__init__(
            f"refused to write {table}: field {field!r} looks like personal data ({', '.join(self.entities)}); "
            "the AI-Act store keeps documentation and non-personal aggregates only"
        )


@dataclass(frozen=True)
class Hit:
    """A field path and the entity types found in it."""

    field: str
    entities: tuple[str, ...]


def _leaves(value: Any, path: str, depth: int = 0) -> Iterable[tuple[str, str]]:
    """(path, text) for every string (and integer, as text) inside a value; JSON strings are opened."""
    if depth > 32:
        yield path, json.dumps(value, default=str)[:10_000]
        return
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict | list):
                yield from _leaves(parsed, path, depth + 1)
                return
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield path, str(k)
            yield from _leaves(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]", depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, str(value)


# Presidio's default score threshold, as processors.recognizers.scan.DEFAULT_THRESHOLD.
DEFAULT_THRESHOLD = 0.5
_SCANNERS: dict[tuple[str, float], Scanner] = {}
_SCANNERS_LOCK = threading.Lock()


def shared_scanner(ner: NerMode = "auto", threshold: float = DEFAULT_THRESHOLD) -> Scanner:
    """A process-wide scanner for ``(ner, threshold)``: loading recognizers (and spaCy) takes seconds,
    so they are imported on first use and readers of the ledger never pay for them."""
    from processors.recognizers import default_recognizers
    from processors.recognizers.scan import Scanner

    with _SCANNERS_LOCK:
        scanner = _SCANNERS.get((ner, threshold))
        if scanner is None:
            nlp = None
            if ner != "off":
                # Imported here: the NER model is optional and slow to load.
                from processors.pii import Config as PiiConfig
                from processors.pii import load_ner

                nlp = load_ner(PiiConfig(ner=ner))
            scanner = _SCANNERS[(ner, threshold)] = Scanner(default_recognizers(), nlp, threshold=threshold)
        return scanner


class PiiGuard:
    """Scans values with the recognizers of ``processors.recognizers`` (and spaCy NER per ``ner``).

    The scanner is built on first use (loading the recognizers takes a few seconds) and is safe to
    share between threads once built.
    """

    def __init__(
        self, scanner: Scanner | None = None, ner: NerMode = "auto", threshold: float = DEFAULT_THRESHOLD
    ) -> None:
        self._scanner = scanner
        self._ner: NerMode = ner
        self._threshold = threshold
        self._lock = threading.Lock()

    @property
    def scanner(self) -> Scanner:
        """The scanner, built now if needed (one per process and setting: recognizers are read-only)."""
        if self._scanner is None:
            with self._lock:
                if self._scanner is None:
                    self._scanner = shared_scanner(self._ner, self._threshold)
        return self._scanner

    def scan(self, fields: Mapping[str, Any]) -> list[Hit]:
        """Every field (path inside JSON values included) with a detection, in field order."""
        return [hit for _, hit in self.scan_rows([fields])]

    def scan_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, Hit]]:
        """(row index, hit) for every field of every row with a detection; one batched scan."""
        where: list[tuple[int, str]] = []
        texts: list[str] = []
        for index, row in enumerate(rows):
            for name, value in row.items():
                for path, text in _leaves(value, name):
                    if text and not (text.startswith(_TOKEN_PREFIX) and text.endswith(">") and ":" in text):
                        where.append((index, path))
                        texts.append(text)
        if not texts:
            return []
        found = self.scanner.scan_many(texts, [path.rsplit(".", 1)[-1] for _, path in where])
        hits: dict[tuple[int, str], set[str]] = {}
        for key, findings in zip(where, found, strict=True):
            if findings:
                hits.setdefault(key, set()).update(f.entity for f in findings)
        return [(index, Hit(path, tuple(sorted(e)))) for (index, path), e in hits.items()]

    def check(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Raise ``PersonalDataError`` for the first field of ``rows`` that looks like personal data."""
        hits = self.scan_rows(rows)
        if hits:
            _, hit = hits[0]
            raise PersonalDataError(table, hit.field, hit.entities)
