"""International bank account numbers, validated with the ISO 13616 length and MOD 97-10 check."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, iban_valid_prefix


class SovtelIbanRecognizer(SovtelRecognizer):
    """An IBAN written compact or in groups of four; the check digits must verify."""

    ENTITY = "IBAN_CODE"
    PATTERNS = (
        ("grouped", r"(?<![\w-])[A-Z]{2}\d{2}(?:[ \u00a0-][A-Z0-9]{4}){2,7}(?:[ \u00a0-][A-Z0-9]{1,4})?(?![\w-])", 0.5),
        ("compact", r"(?<![\w-])[A-Z]{2}\d{2}[A-Z0-9]{11,30}(?![\w-])", 0.5),
        # Some people write IBANs in lower case; the check digits still decide.
        ("lower", r"(?<![\w-])[a-z]{2}\d{2}(?:[ ]?[a-z0-9]{4}){3,7}(?:[ ]?[a-z0-9]{1,4})?(?![\w-])", 0.4),
    )
    CONTEXT = ("iban", "account", "konto", "compte", "conto", "cuenta", "rekening", "rachunek", "bank", "sepa")
    TRIGGER = r"[A-Za-z]{2}\d{2}"

    def validate_result(self, pattern_text: str) -> bool:
        """True when the characters form an IBAN of the country's length with valid check digits.

        Written in groups, trailing characters after the IBAN's length are tolerated (the last group
        may run into other text); written compact, the whole token must be the IBAN, or one hex
        digest in a hundred (letters, digits, a lucky MOD 97) would pass for one.
        """
        compact = alnum_upper(pattern_text)
        valid = iban_valid_prefix(compact)
        if valid is None:
            return False
        return valid == compact or not pattern_text.isalnum()

    def normalise(self, text: str) -> str:
        """The compact upper-case IBAN."""
        compact = alnum_upper(text)
        return iban_valid_prefix(compact) or compact
