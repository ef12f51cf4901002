"""Scoring a masking run on the PII corpus: which planted values leaked (verbatim, in part, or escaped
inside JSON) and which telemetry look-alikes the masking altered (false positives)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from evaluation.pii.corpus import Planted, Sample
from evaluation.pii.vocabulary import ERRORS, GPUS, MODELS, VERSIONS

_PARTICLES = frozenset(
    {"van", "von", "de", "der", "den", "del", "della", "di", "da", "dos", "du", "la", "le", "ten", "ter", "zu", "y"}
)


def visible_strings(value: object) -> Iterator[str]:
    """Every string a reader of ``value`` can see: the value itself and, for JSON text, dicts and
    lists, every key and string inside them at any depth (JSON inside strings too)."""
    if isinstance(value, str):
        yield value
        head = value.lstrip()[:1]
        if head in ("{", "["):
            with contextlib.suppress(ValueError):
                yield from visible_strings(json.loads(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from visible_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from visible_strings(v)
    elif value is not None:
        yield str(value)


def visible_text(output: str) -> str:
    """Everything a reader of ``output`` can see: the text and, if it is JSON, every decoded string
    (at any depth, JSON inside strings too), so escaping cannot hide a leak."""
    return "\n".join(visible_strings(output))


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).casefold()


def leaked(planted: Planted, output: str) -> bool:
    """Whether any recognisable part of a planted value survives in ``output``.

    Names leak if any name part (3+ letters, particles aside) is still a word of the output.
    E-mail addresses leak if the address or its local part before an ``@`` survives (the local
    part alone is often the person's name, which is scored as a name). Other values leak if they
    appear verbatim, or if at least half of their characters survive in runs of six or more
    (separators ignored), so a half-masked IBAN or card still counts.
    """
    seen = visible_text(output)
    if planted.value in seen:
        return True
    if planted.entity == "EMAIL_ADDRESS":
        local = planted.value.split("@", 1)[0]
        return planted.value.casefold() in seen.casefold() or re.search(rf"{re.escape(local)}\s*@", seen) is not None
    if planted.entity == "PERSON":
        parts = [p for p in re.split(r"[\s-]+", planted.value) if len(p) >= 3 and p.lower() not in _PARTICLES]
        return any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", seen, re.IGNORECASE) for p in parts)
    value, text = _compact(planted.value), _compact(seen)
    return _surviving_share(value, text) >= 0.5


def _surviving_share(value: str, text: str, run: int = 6) -> float:
    """The share of ``value``'s characters that appear in ``text`` in runs of at least ``run``
    characters (a masked middle with both ends left still counts as mostly surviving)."""
    if len(value) < run:
        return 1.0 if value and value in text else 0.0
    covered, i = 0, 0
    while i <= len(value) - run:
        length = 0
        while i + length < len(value) and value[i : i + length + 1] in text:
            length += 1
        if length >= run:
            covered += length
            i += length
        else:
            i += 1
    return covered / len(value)


@dataclass
class EntityScore:
    """Planted and leaked counts for one entity type."""

    planted: int = 0
    leaked: int = 0

    @property
    def leak_rate(self) -> float:
        """Leaked / planted (0 when nothing was planted)."""
        return self.leaked / self.planted if self.planted else 0.0


@dataclass
class Evaluation:
    """Leak and false-positive results of one masking run over a corpus."""

    entities: dict[str, EntityScore] = field(default_factory=dict)
    negatives: dict[str, EntityScore] = field(default_factory=dict)  # per negative kind: planted/altered
    # Names with a given name or surname in the gazetteers, and names with neither.
    names_in_gazetteer: EntityScore = field(default_factory=EntityScore)
    names_outside_gazetteer: EntityScore = field(default_factory=EntityScore)
    invalid_json: int = 0
    leaked_examples: list[tuple[str, str]] = field(default_factory=list)
    altered_examples: list[str] = field(default_factory=list)

    @property
    def planted(self) -> int:
        """All planted values."""
        return sum(e.planted for e in self.entities.values())

    @property
    def leaked(self) -> int:
        """All leaked values."""
        return sum(e.leaked for e in self.entities.values())

    @property
    def leak_rate(self) -> float:
        """Leaked / planted over all entity types."""
        return self.leaked / self.planted if self.planted else 0.0

    @property
    def negatives_total(self) -> int:
        """All negatives."""
        return sum(e.planted for e in self.negatives.values())

    @property
    def negatives_altered(self) -> int:
        """Negatives no longer present verbatim."""
        return sum(e.leaked for e in self.negatives.values())

    @property
    def false_positive_rate(self) -> float:
        """Altered negatives / negatives."""
        return self.negatives_altered / self.negatives_total if self.negatives_total else 0.0


def _negative_kind(value: str) -> str:
    for kind, values in (("model", MODELS), ("gpu", GPUS), ("error", ERRORS), ("version", VERSIONS)):
        if value in values:
            return kind
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value):
        return "uuid"
    if re.fullmatch(r"(?:sha256:)?[0-9a-f]{16,64}", value):
        return "hex id"
    if re.fullmatch(r"[\d.e+-]+", value) and "." in value and value.count(".") == 1:
        return "float"
    if re.fullmatch(r"\d{10,13}|\d{4}-\d\d-\d\d.*|\w{3}, .*GMT", value):
        return "timestamp"
    if value.startswith(("gpu-node", "aks-", "gke-", "ip-", "worker-")):
        return "node"
    return "pod"


def evaluate(samples: Sequence[Sample], outputs: Sequence[str], gazetteer: frozenset[str] = frozenset()) -> Evaluation:
    """Score masked ``outputs`` (one per sample, same order) against what each sample planted."""
    ev = Evaluation()
    for sample, output in zip(samples, outputs, strict=True):
        if sample.kind == "tool_args":
            try:
                json.loads(output)
            except ValueError:
                ev.invalid_json += 1
        seen = visible_text(output)
        for p in sample.planted:
            score = ev.entities.setdefault(p.entity, EntityScore())
            score.planted += 1
            hit = leaked(p, output)
            score.leaked += hit
            if hit and len(ev.leaked_examples) < 40:
                ev.leaked_examples.append((p.entity, p.value))
            if p.entity == "PERSON" and gazetteer:
                known = any(part in gazetteer for part in p.value.split())
                bucket = ev.names_in_gazetteer if known else ev.names_outside_gazetteer
                bucket.planted += 1
                bucket.leaked += hit
        for neg in sample.negatives:
            score = ev.negatives.setdefault(_negative_kind(neg), EntityScore())
            score.planted += 1
            altered = neg not in seen
            score.leaked += altered
            if altered and len(ev.altered_examples) < 40:
                ev.altered_examples.append(neg)
    return ev
