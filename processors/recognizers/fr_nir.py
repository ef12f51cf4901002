"""French social security number (NIR / numéro de sécurité sociale, 15 characters)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, fr_nir_valid


class SovtelFrNirRecognizer(SovtelRecognizer):
    """Sex, year, month, department (2A/2B for Corsica), commune, order and a mod-97 key."""

    ENTITY = "FR_NIR"
    PATTERNS = (
        (
            "nir",
            r"(?<![\w.,-])[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w-]|[.,]\d)",
            0.5,
        ),
    )
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "social security",
        "sécurité sociale",
        "securite sociale",
        "nir",
        "insee",
        "sécu",
        "secu",
        "vitale",
        "numéro",
        "numero",
    )
    TRIGGER = r"[12378] ?\d{2} ?\d{2}"

    def validate_result(self, pattern_text: str) -> bool:
        """True when the key verifies (1 in 97 random numbers would pass)."""
        return fr_nir_valid(alnum_upper(pattern_text))

    def normalise(self, text: str) -> str:
        """Compact upper case."""
        return alnum_upper(text)
