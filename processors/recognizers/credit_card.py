"""Payment card numbers: issuer prefix, length and the Luhn check."""

from __future__ import annotations

import re

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only, luhn_valid

# Issuer prefix → allowed lengths: Visa, Mastercard (51-55, 2221-2720), Amex, Discover, UnionPay,
# Diners, JCB, Maestro. A number of the wrong length for its prefix is not a card.
_ISSUERS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"^4"), frozenset({13, 16, 19})),
    (re.compile(r"^(?:5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720))"), frozenset({16})),
    (re.compile(r"^3[47]"), frozenset({15})),
    (re.compile(r"^(?:6011|65|64[4-9]|62)"), frozenset(range(16, 20))),
    (re.compile(r"^(?:30[0-5]|36|38)"), frozenset(range(14, 20))),
    (re.compile(r"^35"), frozenset(range(16, 20))),
    (re.compile(r"^(?:50|5[6-9]|6)"), frozenset(range(12, 20))),
)


def issuer_length_ok(digits: str) -> bool:
    """Whether the number has a length its issuer uses."""
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _ISSUERS)


class SovtelCreditCardRecognizer(SovtelRecognizer):
    """13 to 19 digits, optionally grouped by spaces or dashes, with a known issuer prefix and Luhn."""

    ENTITY = "CREDIT_CARD"
    PATTERNS = (
        ("grouped", r"(?<![\w.,-])[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?(?![\w-]|[.,]\d)", 0.5),
        ("amex grouped", r"(?<![\w.,-])3[47]\d{2}[ -]\d{6}[ -]\d{5}(?![\w-]|[.,]\d)", 0.5),
        ("compact", r"(?<![\w.,-])[2-6]\d{12,18}(?![\w-]|[.,]\d)", 0.5),
    )
    CONTEXT = ("card", "credit", "visa", "mastercard", "amex", "karte", "carte", "carta", "tarjeta", "kaart", "karta")
    TRIGGER = r"[2-6]\d{3}"

    def validate_result(self, pattern_text: str) -> bool:
        """True for a known issuer prefix with one of its lengths and a passing Luhn check."""
        digits = digits_only(pattern_text)
        return issuer_length_ok(digits) and luhn_valid(digits)

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
