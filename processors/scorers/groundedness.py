"""Local groundedness (hallucination) scorer: every claim of the answer is checked against the evidence.

Claims are sentences; a claim is supported when its content words (stemmed, with a few generic
synonyms) occur in the evidence, its numbers and proper nouns occur there too, the facts it binds
together sit in one evidence passage, and its polarity agrees with the passage that matches it best.
The answer's groundedness is its weakest claim's score; below ``threshold`` it is a hallucination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processors.scorers.base import ScoreResult, ScoringItem
from processors.scorers.refusal import classify, is_empty
from processors.scorers.text import (
    MONTHS,
    NUMBER_WORDS,
    STOPWORDS,
    SYNONYM_GROUPS,
    Analysis,
    analyse,
    canonical,
    sentences,
    stem,
    tokens,
)

# Calibrated with bench/quality.py on the dev split of evaluation/hallucination/ (see docs/quality.md).
DEFAULT_THRESHOLD = 0.6

_DIGITS = re.compile(r"\d+")
_PUNCTUATION = "\"'()[]{}<>,.;:!?*•-"


def _digit_runs(text: str) -> set[str]:
    """Maximal digit runs of a text, thousands separators removed and leading zeros dropped."""
    return {str(int(d)) for d in _DIGITS.findall(text.replace(",", ""))}

# Canonical stem → the stems of its whole synonym group (what an evidence sentence may say instead).
_SYNONYMS: dict[str, set[str]] = {}
for _group in SYNONYM_GROUPS:
    _stems = {stem(w) for w in _group if " " not in w}
    _SYNONYMS.setdefault(canonical(_group[0]), set()).update(_stems)

# Reasons a claim was not supported, as stored in quality_labels["hallucination.reason"].
REASONS = ("unsupported_number", "unsupported_entity", "contradiction", "unbound_facts", "low_overlap")


class GroundednessOptions(BaseModel):
    """Options of the built-in groundedness scorer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0.0, le=1.0,
                             description="Groundedness below this is a hallucination.")
    min_evidence_words: int = Field(default=8, ge=0,
                                    description="Fewer content words of evidence than this: not scored.")
    min_history_words: int = Field(
        default=6, ge=0, description="A user-supplied passage (two or more statements) this long counts as evidence.")
    max_answer_chars: int = Field(default=4000, ge=100, description="Longer answers are scored on this prefix.")
    max_evidence_chars: int = Field(default=20000, ge=100, description="Evidence beyond this is not read.")
    number_penalty: float = Field(default=0.25, ge=0.0, le=1.0)
    entity_penalty: float = Field(default=0.45, ge=0.0, le=1.0)
    contradiction_penalty: float = Field(default=0.5, ge=0.0, le=1.0)
    binding_penalty: float = Field(default=0.4, ge=0.0, le=1.0)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One evidence passage: its canonical content stems, numbers and polarity."""

    stems: frozenset[str]
    numbers: frozenset[str]
    negated: bool


# (sentence index, its analysis, whether a passage starts there)
_Said = tuple[int, Analysis, bool]


def _windows(units: Sequence[_Said]) -> list[_Unit]:
    """Passages: a sentence plus the following ones that name no entity of their own ("It opens at 9."),
    so a fact split over sentences still binds but two subjects never share a passage."""
    out: list[_Unit] = []
    for k, (index, first, start) in enumerate(units):
        if not start:
            continue
        group = [first]
        for nxt_index, nxt, _ in units[k + 1 : k + 3]:
            if nxt.entities or nxt_index != index + len(group):
                break
            group.append(nxt)
        if len(group) == 1:
            out.append(_Unit(first.stems, first.numbers, first.negated))
        else:
            out.append(_Unit(frozenset().union(*(u.stems for u in group)),
                             frozenset().union(*(u.numbers for u in group)), first.negated))
    return out


class Focus:
    """What an answer could be supported by: 3-letter prefixes of its content words (and of their
    synonyms) and its numbers. Evidence sentences sharing none of them cannot support any claim, so
    they are never analysed in full: long contexts cost little more than short ones."""

    def __init__(self, answer: str) -> None:
        whole = analyse(answer)
        self.numbers = whole.numbers
        # A stem is a prefix of its word: match words by their first four letters (all of a shorter stem),
        # also for the stem's synonyms and for number words and months naming one of the answer's numbers.
        prefixes: set[str] = set()
        for s in whole.stems:
            prefixes.add(s[:4])
            prefixes.update(o[:4] for o in _SYNONYMS.get(s, ()))
        prefixes.update(w[:4] for w, n in (*NUMBER_WORDS.items(), *MONTHS.items()) if n in self.numbers)
        self.prefixes = prefixes
        self.digit_runs = _digit_runs(answer)

    def relevant(self, sentence: str) -> bool:
        """Whether a sentence shares a word prefix or a number with the answer."""
        if not self.prefixes.isdisjoint({w.strip(_PUNCTUATION)[:4] for w in sentence.lower().split()}):
            return True
        # Digit runs ("1,234.50" → 1234 and 50) are a cheap, generous stand-in for normalised numbers.
        return bool(self.digit_runs) and not self.digit_runs.isdisjoint(_digit_runs(sentence))


def _select(said: Sequence[str], focus: Focus | None) -> list[_Said]:
    """Analyses of the relevant sentences (passages start there) and of the two after each (a fact may
    continue there)."""
    if focus is None:
        return [(i, analyse(s), True) for i, s in enumerate(said)]
    starts = {i for i, s in enumerate(said) if focus.relevant(s)}
    keep = sorted({j for i in starts for j in (i, i + 1, i + 2) if j < len(said)})
    return [(i, analyse(said[i]), i in starts) for i in keep]


class Evidence:
    """The evidence of one item, analysed once: vocabulary, numbers and passage windows."""

    def __init__(self, texts: Sequence[str], conversation: Sequence[str], max_chars: int,
                 focus: Focus | None = None) -> None:
        budget = max_chars
        said: list[str] = []
        words: set[str] = set()
        for text in texts:
            if budget <= 0:
                break
            chunk = text[:budget]
            budget -= len(chunk)
            said.extend(sentences(chunk))
            words.update(w.strip(_PUNCTUATION) for w in chunk.lower().split())
        # Content words of all evidence (is there enough to judge?), without analysing every sentence.
        self.content_words = len(words - STOPWORDS - {""})
        units = _select(said, focus)
        # A pasted passage (two or more statements) is context; a question, however long, is not.
        self.conversation_words = 0
        conv: list[_Said] = []
        conv_windows: list[_Unit] = []
        for text in conversation:
            turn = sentences(text[:max_chars])
            statements = [s for s in turn if not s.rstrip().endswith("?")]
            if len(statements) >= 2:
                self.conversation_words += len({t.lower() for s in statements for t in tokens(s)} - STOPWORDS)
            said_turn = _select(turn, focus)
            conv.extend(said_turn)
            conv_windows.extend(_windows(said_turn))
        every = [a for _, a, _ in (*units, *conv)]
        self.stems: set[str] = set().union(*(u.stems for u in every))
        self.numbers: set[str] = set().union(*(u.numbers for u in every))
        self.prefixes = {s[:6] for s in self.stems if len(s) >= 7}
        self.windows = [*_windows(units), *conv_windows]
        # Inverted index (stem or "#number" → passages) so the best passage is found without a scan.
        self.index: dict[str, list[int]] = {}
        for wid, w in enumerate(self.windows):
            for s in w.stems:
                self.index.setdefault(s, []).append(wid)
            for n in w.numbers:
                self.index.setdefault("#" + n, []).append(wid)

    def supports_word(self, s: str) -> bool:
        """Whether a content stem (already canonical) occurs in the evidence, allowing a long shared prefix."""
        return s in self.stems or (len(s) >= 7 and s[:6] in self.prefixes)


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """How one claim fared: its score and the main reason when it is weak."""

    score: float
    reason: str


class GroundednessScorer:
    """The built-in lexical groundedness scorer (about a millisecond per item on one core)."""

    name = "groundedness"

    def __init__(self, options: GroundednessOptions | None = None) -> None:
        self.options = options or GroundednessOptions()

    def check_claim(self, claim: Analysis, evidence: Evidence) -> ClaimCheck:
        """Score one claim in [0, 1] against the evidence."""
        o = self.options
        content = claim.stems
        if not content and not claim.numbers:
            return ClaimCheck(1.0, "")
        entities = claim.entities
        plain = content - entities
        numbers_ok = claim.numbers & evidence.numbers
        entities_ok = {e for e in entities if evidence.supports_word(e)}
        bad_numbers = len(claim.numbers) - len(numbers_ok)
        bad_entities = len(entities) - len(entities_ok)
        # Numbers and names are the checkable facts of a claim: they weigh double in its coverage.
        plain_ok = sum(1 for s in plain if evidence.supports_word(s))
        keys = len(claim.numbers) + len(entities)
        coverage = (plain_ok + 2.0 * (len(numbers_ok) + len(entities_ok))) / (len(plain) + 2.0 * keys)
        score = coverage * (o.number_penalty**bad_numbers) * (o.entity_penalty**bad_entities)
        penalties = {"unsupported_number": bad_numbers * 2.0, "unsupported_entity": bad_entities * 1.5,
                     "low_overlap": (1.0 - coverage) * 2.0}

        # The passage sharing most with the claim (numbers and names count three times); first on ties.
        overlap: dict[int, float] = {}
        for s in content:
            weight = 3.0 if s in entities_ok else 1.0
            for wid in evidence.index.get(s, ()):
                overlap[wid] = overlap.get(wid, 0.0) + weight
        for n in numbers_ok:
            for wid in evidence.index.get("#" + n, ()):
                overlap[wid] = overlap.get(wid, 0.0) + 2.0
        best: _Unit | None = None
        if overlap:
            top = max(overlap.values())
            best = evidence.windows[min(w for w, v in overlap.items() if v == top)]
        elif evidence.windows:
            best = evidence.windows[0]
        if best is not None:
            together = numbers_ok <= best.numbers and entities_ok <= best.stems
            if len(numbers_ok) + len(entities_ok) >= 2 and not together:
                # Each fact is in the evidence, but never together: a swapped binding.
                score *= o.binding_penalty
                penalties["unbound_facts"] = 1.2
            shared = len(content & best.stems) / max(1, len(content))
            if shared >= 0.5 and claim.negated != best.negated:
                score *= o.contradiction_penalty
                penalties["contradiction"] = 1.3
        reason = max(penalties, key=lambda k: penalties[k]) if score < 1.0 else ""
        return ClaimCheck(max(0.0, min(1.0, score)), reason)

    def score_one(self, item: ScoringItem) -> ScoreResult:
        """Scores and labels of one item."""
        o = self.options
        result = ScoreResult()
        if is_empty(item.answer):
            result.labels["groundedness"] = "not_applicable"
            return result
        answer = item.answer[: o.max_answer_chars]
        evidence = Evidence(item.evidence, (item.question, *item.history), o.max_evidence_chars, Focus(answer))
        if evidence.content_words < o.min_evidence_words and evidence.conversation_words < o.min_history_words:
            result.labels["groundedness"] = "no_evidence"
            return result
        refusals, claims = classify(answer)
        checks = [self.check_claim(analyse(c), evidence) for c in claims]
        checks = [c for c in checks if c.reason or c.score < 1.0] or checks
        if not checks:
            result.scores["hallucination"] = 0.0
            result.labels["groundedness"] = "refusal" if refusals else "not_applicable"
            return result
        weakest = min(checks, key=lambda c: c.score)
        hallucinated = weakest.score < o.threshold
        result.scores["groundedness"] = round(weakest.score, 4)
        result.scores["hallucination"] = 1.0 if hallucinated else 0.0
        result.scores["groundedness.claims"] = float(len(claims))
        result.scores["groundedness.unsupported_claims"] = float(sum(1 for c in checks if c.score < o.threshold))
        result.labels["groundedness"] = "ungrounded" if hallucinated else "grounded"
        if hallucinated:
            result.labels["hallucination.reason"] = weakest.reason
        return result

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        """One result per item: ``groundedness`` in [0, 1] and ``hallucination`` 0/1 where evidence exists."""
        return [self.score_one(item) for item in items]


def create(options: Mapping[str, Any]) -> GroundednessScorer:
    """Build the scorer from options (see GroundednessOptions)."""
    return GroundednessScorer(GroundednessOptions.model_validate(dict(options)))
