"""Dutch citizen service number (burgerservicenummer, BSN, 9 digits)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only, nl_bsn_valid


class SovtelNlBsnRecognizer(SovtelRecognizer):
    """Nine digits passing the eleven-test.

    One random 9-digit number in eleven passes, so the bare form needs a context word; the dotted
    form (``1234.56.782``) is specific enough on its own.
    """

    ENTITY = "NL_BSN"
    PATTERNS = (
        ("bare", r"(?<![\w.,/-])\d{9}(?![\w-]|[.,/]\d)", 0.4),
        ("grouped", r"(?<![\w.,/-])\d{4}[. ]\d{2}[. ]\d{3}(?![\w-]|[.,/]\d)", 0.5),
        ("grouped 3-3-3", r"(?<![\w.,/-])\d{3}[. ]\d{3}[. ]\d{3}(?![\w-]|[.,/]\d)", 0.4),
    )
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "tax",
        "fiscal",
        "bsn",
        "burgerservicenummer",
        "sofinummer",
        "sofi",
        "citizen service",
        "nummer",
        "number",
        "numer",
        "numéro",
        "numero",
    )
    TRIGGER = r"\d{3}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Reject numbers failing the eleven-test; passing ones keep the pattern score."""
        return None if nl_bsn_valid(digits_only(pattern_text)) else False

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
