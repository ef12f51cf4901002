"""The base of every sovtel pattern recognizer: Presidio's PatternRecognizer declared as class data.

A recognizer is patterns, context words and an optional validator (Presidio's model); sovtel adds a
cheap ``TRIGGER`` (when it does not match, no pattern can), ``normalise`` (so one identifier
written two ways gets one replacement token) and ``find_spans``, for a recognizer whose patterns are
shapes that word lists decide on (looked up as sets: a list compiled into a regex is slow to build).
"""

from __future__ import annotations

from typing import Any, ClassVar

import regex
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

# Case matters for most identifiers (IBAN country codes, key prefixes), so IGNORECASE is opt-in.
DEFAULT_FLAGS = regex.MULTILINE | regex.DOTALL


class SovtelRecognizer(PatternRecognizer):
    """A Presidio pattern recognizer whose patterns, context and trigger are class attributes."""

    ENTITY: ClassVar[str]
    # (pattern name, regex, score); a validator may raise the score to 1.0 or reject the match.
    PATTERNS: ClassVar[tuple[tuple[str, str, float], ...]]
    CONTEXT: ClassVar[tuple[str, ...]] = ()
    TRIGGER: ClassVar[str | None] = None
    FLAGS: ClassVar[int] = DEFAULT_FLAGS
    # Set by PatternRecognizer.__init__; declared here so type checkers know it.
    patterns: list[Pattern]

    def __init__(self) -> None:
        super().__init__(
            supported_entity=self.ENTITY,
            name=type(self).__name__,
            patterns=[Pattern(name, rx, score) for name, rx, score in self.PATTERNS],
            context=list(self.CONTEXT),
            global_regex_flags=self.FLAGS,
        )

    def find_spans(self, text: str) -> list[tuple[int, int, float]] | None:
        """Candidate spans and base scores found by the recognizer's own code; None (the default) has
        the scanner run ``PATTERNS``. Validators, context and threshold apply to both alike."""
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        """Presidio's entry point; a recognizer with ``find_spans`` gives Presidio the same candidates
        as the scanner, under Presidio's own validation rules."""
        spans = self.find_spans(text)
        if spans is None:
            return list(super().analyze(text, entities, nlp_artifacts, regex_flags))
        results = []
        for start, end, base in spans:
            matched = text[start:end]
            if not matched:
                continue
            valid = self.validate_result(matched)
            score = base if valid is None else (EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE)
            if self.invalidate_result(matched):
                score = EntityRecognizer.MIN_SCORE
            if score > EntityRecognizer.MIN_SCORE:
                metadata = {
                    RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                }
                results.append(RecognizerResult(self.ENTITY, start, end, score, recognition_metadata=metadata))
        return list(EntityRecognizer.remove_duplicates(results))

    def normalise(self, text: str) -> str:
        """The canonical form of a detected value, for keyed replacement tokens."""
        return text.strip()
