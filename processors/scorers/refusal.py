"""Refusal and empty-answer detection: phrase patterns over the response's sentences, no model."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from processors.scorers.base import ScoreResult, ScoringItem
from processors.scorers.text import sentences

_REFUSAL = re.compile(
    r"""(?ix)
    \b(i\s*(?:'m|am)\s+(?:sorry|afraid)|i\s+apologi[sz]e|sorry,?\s+(?:but\s+)?i\b)
    | \bi\s+(?:can\s*not|can't|cannot|am\s+(?:un|not\s+)able\s+to|won't|will\s+not)\s+
        (?:help|assist|answer|provide|find|share|do|give|comply|tell|say|confirm|determine|see)
    | \bi\s+(?:do\s+not|don't)\s+
        (?:know|have\s+(?:any\s+|enough\s+|the\s+)?(?:information|details|data|access|records?))
    | \b(?:i|we)\s+(?:could\s+not|couldn't|did\s+not|didn't|was\s+unable\s+to)\s+find
    | \b(?:the\s+)?(?:provided\s+|given\s+|available\s+|retrieved\s+)?
        (?:documents?|context|sources?|information|records?|data|text|passages?)
        \s+(?:provided\s+|given\s+|available\s+)?(?:do(?:es)?\s+not|don't|doesn't)\s+
        (?:say|mention|contain|include|specify|state|provide|cover|answer|tell|describe)
    | \bnot\s+(?:mentioned|specified|stated|provided|available|covered|included|found)\s+in\s+the\s+
        (?:provided\s+|given\s+|available\s+|retrieved\s+)?(?:documents?|context|sources?|text|information|records?|data)
    | \bthere\s+is\s+no\s+(?:information|mention|data|record|details?)\b
    | \bno\s+information\s+(?:is\s+|was\s+)?(?:available|provided|given|found)
    | \bas\s+an\s+ai\b
    | \bi\s+(?:must|have\s+to)\s+decline\b
    | \bunable\s+to\s+(?:answer|help|provide|find|determine|confirm)
    | \b(?:i\s+)?(?:can\s*not|can't|cannot)\s+(?:be\s+)?(?:answered|determined|confirmed)\s+from
    """
)
# Courtesy sentences carry no claim: they are neither evidence of grounding nor of fabrication.
_FILLER = re.compile(
    r"""(?ix)^\W*(
      (?:i\s+)?hope\s+(?:this|that)\s+helps
    | let\s+me\s+know\b
    | feel\s+free\b
    | (?:i'm|i\s+am)\s+happy\s+to\s+help
    | is\s+there\s+anything\s+else
    | you're\s+welcome | you\s+are\s+welcome
    | thank(?:s|\s+you)\b
    | (?:sure|certainly|of\s+course|absolutely|great\s+question|good\s+question|okay|ok)\W*$
    | (?:sure|certainly|of\s+course|absolutely|here\s+is|here's|here\s+are)\b[^.]{0,40}:?\s*$
    | (?:please\s+)?(?:contact|reach\s+out\s+to)\s+(?:us|support|our\s+team|customer\s+service)
        \s*(?:if|for|with)?\b[^.]{0,40}[.!]?\s*$
    )"""
)
_VISIBLE = re.compile(r"[^\W_]", re.UNICODE)


def is_refusal(sentence: str) -> bool:
    """Whether a sentence declines to answer or says the information is not available."""
    return _REFUSAL.search(sentence) is not None


def is_filler(sentence: str) -> bool:
    """Whether a sentence is courtesy without a factual claim ("Hope this helps!")."""
    return _FILLER.search(sentence) is not None


def is_empty(text: str) -> bool:
    """Whether an answer has no letter or digit at all (blank, whitespace or punctuation only)."""
    return _VISIBLE.search(text) is None


def classify(text: str) -> tuple[list[str], list[str]]:
    """Split an answer into (refusal sentences, claim sentences); courtesy sentences are left out."""
    refusals: list[str] = []
    claims: list[str] = []
    for s in sentences(text):
        if is_refusal(s):
            refusals.append(s)
        elif not is_filler(s):
            claims.append(s)
    return refusals, claims


class RefusalScorer:
    """Scores ``refusal`` (1 when the answer only declines) and ``empty`` (1 when there is no text)."""

    name = "refusal"

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        """Per item: ``empty`` always; ``refusal`` and its label when there is text."""
        out: list[ScoreResult] = []
        for item in items:
            result = ScoreResult()
            if is_empty(item.answer):
                result.scores["empty"] = 0.0 if item.tool_call else 1.0
                result.labels["answer"] = "tool_call" if item.tool_call else "empty"
                out.append(result)
                continue
            result.scores["empty"] = 0.0
            refusals, claims = classify(item.answer)
            if refusals and not claims:
                result.scores["refusal"], result.labels["answer"] = 1.0, "refusal"
            elif refusals:
                result.scores["refusal"], result.labels["answer"] = 0.0, "partial_refusal"
            else:
                result.scores["refusal"], result.labels["answer"] = 0.0, "answer"
            out.append(result)
        return out


def create(options: Mapping[str, Any]) -> RefusalScorer:
    """Build the refusal scorer (it takes no options)."""
    if options:
        raise ValueError(f"the refusal scorer takes no options (got {', '.join(sorted(options))})")
    return RefusalScorer()
