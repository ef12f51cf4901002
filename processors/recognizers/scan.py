"""Runs the recognizers' own patterns, validators and context words directly, without Presidio's
AnalyzerEngine around them: the same definitions, a fraction of the per-text overhead.

The AnalyzerEngine builds explanations and NLP artefacts for every text; telemetry needs only the
spans. ``Scanner`` keeps Presidio's scoring rules (a validator's True lifts the score to 1.0,
False or an invalidator drops the match, a context word adds a boost) and adds a cheap trigger per
recognizer, so most telemetry strings cost one or two failed regex searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regex

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.person_ner import SpacyPersonRecognizer

# Presidio's LemmaContextAwareEnhancer adds 0.35 when a context word is near.
CONTEXT_BOOST = 0.35
DEFAULT_THRESHOLD = 0.5
# Characters before / after a match searched for context words (about five words before).
CONTEXT_BEFORE = 48
CONTEXT_AFTER = 24
# A pattern that needs longer than this on one text raises TimeoutError (Presidio does the same);
# the caller treats that text as unmaskable rather than letting one input stall the pipeline.
REGEX_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: entity type, character span, score and the value's canonical form."""

    entity: str
    start: int
    end: int
    score: float
    value: str


@dataclass(frozen=True)
class _Prepared:
    recognizer: SovtelRecognizer
    trigger: Any
    patterns: tuple[tuple[Any, float], ...]
    context: Any
    # The recognizer finds its candidates itself (SovtelRecognizer.find_spans is overridden).
    finds: bool


def _context_regex(words: Sequence[str]) -> Any:
    """Context words match at the start of a word; short ones (``tel``, ``cf``) only as whole words."""
    if not words:
        return None
    parts = sorted({regex.escape(w.lower()) + ("" if len(w) >= 4 else r"(?!\w)") for w in words}, key=len, reverse=True)
    return regex.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", regex.IGNORECASE)


class Scanner:
    """Finds PII spans in texts with pattern recognizers and, when given, batched spaCy NER."""

    def __init__(
        self,
        recognizers: Sequence[SovtelRecognizer],
        ner: SpacyPersonRecognizer | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.threshold = threshold
        self.ner = ner if ner is not None and ner.available else None
        prepared = []
        for rec in recognizers:
            flags = rec.global_regex_flags or 0
            patterns = tuple((regex.compile(p.regex, flags=flags), float(p.score)) for p in rec.patterns)
            trigger = regex.compile(rec.TRIGGER, flags=flags) if rec.TRIGGER else None
            finds = type(rec).find_spans is not SovtelRecognizer.find_spans
            prepared.append(_Prepared(rec, trigger, patterns, _context_regex(rec.context or []), finds))
        self._prepared = tuple(prepared)
        entities = [p.recognizer.ENTITY for p in self._prepared]
        if self.ner is not None:
            entities.append("PERSON")
        self.entities: tuple[str, ...] = tuple(dict.fromkeys(entities))

    def _has_context(self, prep: _Prepared, text: str, start: int, end: int, context: str) -> bool:
        if prep.context is None:
            return False
        if context and prep.context.search(context):
            return True
        return bool(
            prep.context.search(text, max(0, start - CONTEXT_BEFORE), start)
            or prep.context.search(text, end, min(len(text), end + CONTEXT_AFTER))
        )

    def _pattern_findings(self, text: str, context: str) -> list[Finding]:
        found: list[Finding] = []
        for prep in self._prepared:
            if prep.trigger is not None and prep.trigger.search(text) is None:
                continue
            rec = prep.recognizer
            spans = rec.find_spans(text) if prep.finds else None
            if spans is None:
                spans = [
                    (*m.span(), base)
                    for compiled, base in prep.patterns
                    for m in compiled.finditer(text, timeout=REGEX_TIMEOUT_S)
                ]
            for start, end, base in spans:
                if start == end:
                    continue
                matched = text[start:end]
                valid = rec.validate_result(matched)
                score = base if valid is None else (1.0 if valid else 0.0)
                if score > 0.0 and rec.invalidate_result(matched):
                    score = 0.0
                if score <= 0.0:
                    continue
                if score < self.threshold and self._has_context(prep, text, start, end, context):
                    score = min(1.0, score + CONTEXT_BOOST)
                if score >= self.threshold:
                    found.append(Finding(rec.ENTITY, start, end, score, rec.normalise(matched)))
        return found

    def scan(self, text: str, context: str = "") -> list[Finding]:
        """Findings in one text (patterns and NER), merged so that no two overlap."""
        return self.scan_many([text], [context])[0]

    def scan_many(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None, ner: Sequence[bool] | None = None
    ) -> list[list[Finding]]:
        """Findings per text; NER runs once, batched, over every text where ``ner`` allows it.

        ``contexts`` are extra words per text that count as nearby context (e.g. the JSON key path).
        """
        per_text = [self._pattern_findings(t, contexts[i] if contexts else "") for i, t in enumerate(texts)]
        if self.ner is not None:
            selected = [i for i in range(len(texts)) if ner is None or ner[i]]
            covered = [[(f.start, f.end) for f in per_text[i]] for i in selected]
            ner_results = self.ner.analyze_many([texts[i] for i in selected], covered)
            for i, results in zip(selected, ner_results, strict=True):
                for r in results:
                    per_text[i].append(Finding("PERSON", r.start, r.end, r.score, texts[i][r.start : r.end].strip()))
        return [merge(f, t) for f, t in zip(per_text, texts, strict=True)]


def merge(findings: list[Finding], text: str) -> list[Finding]:
    """Overlapping findings become one span covering all of them, typed by the best-scoring one.

    Masking the union is the safe choice: a partial overlap must not leave part of a value.
    """
    if len(findings) <= 1:
        return findings
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    out: list[Finding] = []
    group = [ordered[0]]
    end = ordered[0].end
    for f in ordered[1:]:
        if f.start < end:
            group.append(f)
            end = max(end, f.end)
        else:
            out.append(_combine(group, text))
            group, end = [f], f.end
    out.append(_combine(group, text))
    return out


def _combine(group: list[Finding], text: str) -> Finding:
    if len(group) == 1:
        return group[0]
    best = max(group, key=lambda f: (f.score, f.end - f.start))
    start, end = min(f.start for f in group), max(f.end for f in group)
    value = best.value if (best.start, best.end) == (start, end) else text[start:end].strip()
    return Finding(best.entity, start, end, best.score, value)
