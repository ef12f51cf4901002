"""The base of every sovtel pattern recognizer: Presidio's PatternRecognizer declared as class data.

A recognizer is patterns, context words and an optional validator (Presidio's model); sovtel adds a
cheap ``TRIGGER`` (when it does not match, no pattern can) and ``normalise`` (so one identifier
written two ways gets one replacement token).
"""

from __future__ import annotations

from typing import ClassVar

import regex
from presidio_analyzer import Pattern, PatternRecognizer

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

    def normalise(self, text: str) -> str:
        """The canonical form of a detected value, for keyed replacement tokens."""
        return text.strip()
