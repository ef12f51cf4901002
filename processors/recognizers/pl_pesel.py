"""Polish national identification number (PESEL, 11 digits)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only, pl_pesel_valid


class SovtelPlPeselRecognizer(SovtelRecognizer):
    """11 digits encoding a real birth date, with the weighted check digit.

    The date and check digit together pass about one random 11-digit number in fifty; 11-digit
    numbers are rare in telemetry, so no context word is needed.
    """

    ENTITY = "PL_PESEL"
    PATTERNS = (("pesel", r"(?<![\w.,/-])\d{11}(?![\w-]|[.,/]\d)", 0.5),)
    CONTEXT = ("national", "identity", "identification", "id number", "pesel", "numer", "identyfikacyjny", "number")
    TRIGGER = r"\d{11}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Reject numbers failing the date or check digit."""
        return None if pl_pesel_valid(digits_only(pattern_text)) else False

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
