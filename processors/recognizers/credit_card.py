"""Payment card numbers: 13 to 19 digits written as cards are written, and the Luhn check.

Issuers keep opening new ranges and private-label cards use prefixes no public table lists, so an
issuer prefix only raises confidence; the Luhn check and a card-like shape decide.
"""

from __future__ import annotations

import re

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only, looks_like_epoch, luhn_valid

# Issuer prefix → lengths: Visa, Mastercard (51-55, 2221-2720), Amex, Discover, UnionPay, Diners,
# JCB (also the 15-digit 1800 / 2131 ranges). Maestro's ranges (50, 56-69, any length from 12)
# cover a fifth of all numbers, so they count as no issuer at all.
_ISSUERS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"^4"), frozenset({13, 16, 19})),
    (re.compile(r"^(?:5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720))"), frozenset({16})),
    (re.compile(r"^3[47]"), frozenset({15})),
    (re.compile(r"^(?:6011|65|64[4-9]|62)"), frozenset(range(16, 20))),
    (re.compile(r"^(?:30[0-5]|36|38)"), frozenset(range(14, 20))),
    (re.compile(r"^(?:35|1800|2131)"), frozenset(range(15, 20))),
)


def issuer_length_ok(digits: str) -> bool:
    """Whether the number has a length its issuer uses."""
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _ISSUERS)


class SovtelCreditCardRecognizer(SovtelRecognizer):
    """A Luhn-valid number of 13 to 19 digits, contiguous or grouped like a card.

    Grouped in fours (or Amex's 4-6-5) it is a card whatever its prefix. Written contiguous, it is
    a card with a known issuer prefix and length, or with 16 digits (the common length); other
    contiguous numbers (12-digit Maestro, but also row counts, offsets, account ids) need a context
    word. Epoch timestamps of card length
    (milliseconds, micro-, nanoseconds) pass Luhn one time in ten and are never cards.
    """

    ENTITY = "CREDIT_CARD"
    # A card does not continue a longer run of groups (the account part of an IBAN, "DE89 3704 …").
    PATTERNS = (
        ("grouped", r"(?<![\w.,-]|\d[ -])[1-9]\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?(?![\w-]|[.,]\d)", 0.5),
        ("amex grouped", r"(?<![\w.,-]|\d[ -])3\d{3}([ -])\d{6}\1\d{4,5}(?![\w-]|[.,]\d)", 0.5),
        ("compact", r"(?<![\w.,-]|\d[ -])[1-9]\d{12,18}(?![\w-]|[.,]\d)", 0.4),
        # Maestro still issues 12-digit numbers; without an issuer prefix they are too common.
        ("compact maestro", r"(?<![\w.,-]|\d[ -])(?:50|5[6-9]|6\d)\d{10}(?![\w-]|[.,]\d)", 0.4),
    )
    CONTEXT = (
        "card", "credit", "debit", "visa", "mastercard", "amex", "maestro", "cc", "pan", "karte", "kreditkarte",
        "carte", "carta", "tarjeta", "kaart", "creditcard", "karta", "kartę", "karty",
    )  # fmt: skip
    TRIGGER = r"\d{4}[ -]?\d{4}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """True for Luhn-valid grouped numbers, known issuer lengths and 16-digit numbers; None
        (context decides) for other Luhn-valid contiguous numbers; False for everything else."""
        digits = digits_only(pattern_text)
        if not 12 <= len(digits) <= 19 or not luhn_valid(digits) or looks_like_epoch(digits):
            return False
        if issuer_length_ok(digits) or (len(digits) >= 13 and not pattern_text.isdigit()):
            return True
        return True if len(digits) == 16 else None

    def normalise(self, text: str) -> str:
        """Digits only."""
        return digits_only(text)
