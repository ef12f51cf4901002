"""German tax identification number (Steuerliche Identifikationsnummer, 11 digits)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import de_tax_id_valid, digits_only


class SovtelDeTaxIdRecognizer(SovtelRecognizer):
    """11 digits (often grouped 2-3-3-3) with the digit-repetition rule and ISO 7064 check digit.

    Together the rules pass about one random 11-digit number in five hundred, so no context word
    is needed; a context word still raises the score.
    """

    ENTITY = "DE_TAX_ID"
    PATTERNS = (("tax id", r"(?<![\w.,/-])[1-9]\d ?\d{3} ?\d{3} ?\d{3}(?![\w-]|[.,/]\d)", 0.5),)
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "steuer",
        "idnr",
        "identifikationsnummer",
        "tin",
        "tax",
        "steuerid",
        "steuer-id",
        "nummer",
        "number",
    )
    TRIGGER = r"[1-9]\d ?\d{3}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Reject numbers failing the checks; passing ones keep the pattern score."""
        return None if de_tax_id_valid(digits_only(pattern_text)) else False

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
