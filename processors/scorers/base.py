"""The scorer contract and registry: a scorer turns (answer, question, evidence) items into scores and labels.

A better local model plugs in by registering a factory under a new name; registration fails at
once on a bad or duplicate name, not when a pipeline first uses it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ScoringItem:
    """One response to score, with everything the model was given (raw content; never stored)."""

    answer: str
    question: str = ""
    history: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    tool_call: bool = False


@dataclass(slots=True)
class ScoreResult:
    """What a scorer says about one item: numeric scores and enumerated labels (never content)."""

    scores: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of items; called on the receiver's thread, so it must be fast and must not block on I/O."""

    name: str

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        """One result per item, in order."""
        ...


ScorerFactory = Callable[[Mapping[str, Any]], Scorer]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_registry: dict[str, ScorerFactory] = {}
_lock = threading.Lock()


class ScorerError(Exception):
    """A scorer name or its options are unusable."""


def register_scorer(name: str, factory: ScorerFactory) -> None:
    """Make ``factory`` available as scorer ``name``; a bad or already registered name raises ScorerError."""
    if not _NAME.match(name):
        raise ScorerError(f"scorer name {name!r} must match {_NAME.pattern}")
    if not callable(factory):
        raise ScorerError(f"scorer {name!r}: the factory is not callable")
    with _lock:
        if name in _registry:
            raise ScorerError(f"scorer {name!r} is already registered")
        _registry[name] = factory


def create_scorer(name: str, options: Mapping[str, Any] | None = None) -> Scorer:
    """A new scorer of a registered name, built with ``options``."""
    with _lock:
        factory = _registry.get(name)
    if factory is None:
        raise ScorerError(f"unknown scorer {name!r}; registered: {', '.join(available()) or 'none'}")
    scorer = factory(dict(options or {}))
    if not isinstance(scorer, Scorer):
        raise ScorerError(f"scorer {name!r}: the factory did not return a Scorer")
    return scorer


def available() -> list[str]:
    """Names of the registered scorers, sorted."""
    with _lock:
        return sorted(_registry)
