"""United States Social Security numbers (SSN): area, group and serial, with their structural rules."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only, us_ssn_valid


class SovtelUsSsnRecognizer(SovtelRecognizer):
    """Nine digits as AAA-GG-SSSS whose area, group and serial the SSA could have issued.

    Written 3-2-4 with one separator repeated, the shape is specific enough on its own; nine bare
    digits (or a 5-4 split) are also ids, counts and BSNs, so they need a context word.
    """

    ENTITY = "US_SSN"
    PATTERNS = (
        ("grouped", r"(?<![\w.,/-])\d{3}([- .])\d{2}\1\d{4}(?![\w-]|[.,/]\d)", 0.6),
        ("bare", r"(?<![\w.,/-])\d{9}(?![\w-]|[.,/]\d)", 0.3),
        ("split 5-4", r"(?<![\w.,/-])\d{5}-\d{4}(?![\w-]|[.,/]\d)", 0.2),
    )
    CONTEXT = (
        "ssn", "social security", "social", "security number", "ss#", "ss #", "ssa", "taxpayer", "tin", "itin",
    )  # fmt: skip
    TRIGGER = r"\d{3}[- .]?\d{2}[- .]?\d{4}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Reject numbers the SSA never issues; valid ones keep the pattern's score."""
        return None if us_ssn_valid(digits_only(pattern_text)) else False

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
