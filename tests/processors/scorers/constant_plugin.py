"""A scorer plugin for tests: importing it registers a scorer that always says 0.5."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from processors.scorers import ScoreResult, ScoringItem, register_scorer

NAME = "test-plugin-constant"


class ConstantScorer:
    """Scores every item ``constant = 0.5``; with ``fail: true`` it raises instead."""

    name = NAME

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        if self.fail:
            raise RuntimeError("this scorer fails on purpose")
        return [ScoreResult({"constant": 0.5}, {"constant": "half"}) for _ in items]


def _create(options: Mapping[str, Any]) -> ConstantScorer:
    return ConstantScorer(bool(options.get("fail", False)))


register_scorer(NAME, _create)
