"""Quality scorers for the ``quality`` processor: the contract, the registry and the built-in scorers."""

from __future__ import annotations

from processors.scorers import groundedness, refusal
from processors.scorers.base import (
    Scorer,
    ScorerError,
    ScoreResult,
    ScoringItem,
    available,
    create_scorer,
    register_scorer,
)

register_scorer("groundedness", groundedness.create)
register_scorer("refusal", refusal.create)

__all__ = [
    "ScoreResult",
    "Scorer",
    "ScorerError",
    "ScoringItem",
    "available",
    "create_scorer",
    "register_scorer",
]
