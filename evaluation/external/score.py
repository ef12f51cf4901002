"""Scoring a masking run on an external set with the regression corpus's leak rules
(``evaluation.pii.score``): per entity, how many planted values are still visible after masking,
and per kind, how many negatives the masking altered."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evaluation.external.samples import ExternalSample
from evaluation.pii.corpus import Planted
from evaluation.pii.score import EntityScore, Evaluation, leaked, visible_text

# Entities scored with another entity's leak rule: a given name or surname alone is a name.
LEAK_RULE_OF = {"GIVEN_NAME": "PERSON", "SURNAME": "PERSON"}


def _as_scored(planted: Planted) -> Planted:
    return Planted(LEAK_RULE_OF.get(planted.entity, planted.entity), planted.value)


def scorable(planted: Planted) -> bool:
    """Whether the leak rule can tell ``planted`` apart at all: it needs a letter or digit (an empty
    value is "in" every output), and left unmasked it must count as leaked."""
    return re.search(r"\w", planted.value) is not None and is_leaked(planted, planted.value)


def is_leaked(planted: Planted, output: str) -> bool:
    """Whether ``planted`` is still visible in ``output`` (the regression corpus's rule, names for
    given names and surnames alone too)."""
    return leaked(_as_scored(planted), output)


def evaluate(samples: Sequence[ExternalSample], outputs: Sequence[str]) -> Evaluation:
    """Score masked ``outputs`` (one per sample, same order) against what each sample planted."""
    ev = Evaluation()
    for sample, output in zip(samples, outputs, strict=True):
        seen = visible_text(output)
        for p in sample.planted:
            score = ev.entities.setdefault(p.entity, EntityScore())
            score.planted += 1
            hit = is_leaked(p, output)
            score.leaked += hit
            if hit and len(ev.leaked_examples) < 40:
                ev.leaked_examples.append((p.entity, p.value))
        for neg in sample.negatives:
            score = ev.negatives.setdefault(neg.kind, EntityScore())
            score.planted += 1
            altered = neg.value not in seen
            score.leaked += altered
            if altered and len(ev.altered_examples) < 40:
                ev.altered_examples.append(neg.value)
    return ev
