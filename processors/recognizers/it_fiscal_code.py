"""Italian fiscal code (codice fiscale, 16 characters)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, it_fiscal_code_valid

# Digits may be replaced by letters (omocodia) when two people would share a code.
_D = "[0-9LMNPQRSTUV]"


class SovtelItFiscalCodeRecognizer(SovtelRecognizer):
    """Surname and name letters, birth date and place, and a check letter."""

    ENTITY = "IT_FISCAL_CODE"
    PATTERNS = (
        (
            "codice fiscale",
            rf"(?<![\w-])(?i:[A-Z]{{6}}{_D}{{2}}[ABCDEHLMPRST]{_D}{{2}}[A-Z]{_D}{{3}}[A-Z])(?![\w-])",
            0.6,
        ),
    )
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "tax code",
        "codice fiscale",
        "fiscale",
        "cf",
        "c.f.",
        "tessera sanitaria",
        "fiscal",
    )
    TRIGGER = r"(?i)[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST]"

    def validate_result(self, pattern_text: str) -> bool:
        """True when the check letter verifies."""
        return it_fiscal_code_valid(pattern_text)

    def normalise(self, text: str) -> str:
        """Upper case."""
        return alnum_upper(text)
