"""Telephone numbers in international and national formats, checked by libphonenumber per region.

Presidio runs ``phonenumbers.PhoneNumberMatcher`` over whole texts for a list of regions; here a
regex finds phone-shaped candidates (so a text with no candidate costs one failed search) and each
candidate is parsed for the same regions with the same offline metadata. How sure a candidate is
depends on how it is written: a country code, a trunk ``0`` or North-American punctuation make a
valid number a phone number on its own; a bare run of digits valid somewhere needs a context word,
because counts and ids are bare digits too.
"""

from __future__ import annotations

import functools

import phonenumbers
import regex

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only

# The regions of the languages we support, the US and the UK first, then neighbours whose numbers
# travel with them. A national number is tried in each, in order.
NATIONAL_REGIONS: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "IT", "ES", "NL", "PL", "AT", "BE", "CH", "IE", "PT", "LU",
)  # fmt: skip
# An extension after the number: "x100", "ext. 12", "extension 7", "#3".
_EXTENSION = r"(?:[ ]?(?:x|ext\.?|extension|#)[ ]?\d{1,6})"
_EXTENSION_RE = regex.compile(r"\s?(?:x|ext\.?|extension|#)\s?\d{1,6}$", regex.IGNORECASE)
# North-American 3-3-4 with its usual punctuation, optionally after +1, 1 or 001.
_NANP_RE = regex.compile(r"(?:(?:\+|00)?1[ .-]?)?(?:\((\d{3})\)[ .-]?|(\d{3})[ .-])(\d{3})[ .-](\d{4})")
# Digits glued to a colon are clock times and ports; to a dot or comma, decimals and versions; a
# national number does not start inside a longer run of digit groups (an id written "86 095 742 719").
_END = r"(?![\w-]|[.,/:]\d|[ ]\d)"
_START = r"(?<![\w+.,/:-]|\d[ ])"


@functools.lru_cache(maxsize=4096)
def _national_plausibility(digits: str) -> int:
    """2 if ``digits`` is a valid national number in one of the regions, 1 if only possible, else 0."""
    best = 0
    for region in NATIONAL_REGIONS:
        try:
            parsed = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return 2
        if best == 0 and phonenumbers.is_possible_number(parsed) and len(digits) >= 9:
            best = 1
    return best


def _nanp_formatted(text: str) -> bool:
    """A 3-3-4 number punctuated the North-American way whose area and exchange start with 2-9."""
    m = _NANP_RE.fullmatch(text)
    if m is None:
        return False
    area = m.group(1) or m.group(2)
    return area[0] in "23456789" and m.group(3)[0] in "23456789"


class SovtelPhoneRecognizer(SovtelRecognizer):
    """A phone number written with a country code, a trunk prefix, North-American punctuation or in
    a national grouping; the validator decides how sure each form is (see the module docstring)."""

    ENTITY = "PHONE_NUMBER"
    PATTERNS = (
        (
            "international",
            r"(?<![\w+])(?:\+|00)[1-9]\d{0,3}(?:[ .\-/]?\(0\))?(?:[ .\-/]?\(?\d{1,5}\)?){1,6}"
            + _EXTENSION
            + "?"
            + _END,
            0.5,
        ),
        (
            "north american",
            _START + r"(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}"
            r"|\d{3} \d{3} \d{4})" + _EXTENSION + "?" + _END,
            0.3,
        ),
        (
            "national trunk 0",
            _START + r"\(?0\d{1,4}\)?[ .\-/]?\d{2,4}(?:[ .\-/]?\d{2,4}){1,3}" + _EXTENSION + "?" + _END,
            0.3,
        ),
        ("national mobile", _START + r"[3-9]\d{2}[ .-]?\d{3}[ .-]?\d{3,4}" + _END, 0.3),
        ("national 3-2-2-2", _START + r"[3-9]\d{2}(?:[ .-]\d{2}){3}" + _END, 0.3),
        ("national 2-3-2-2", _START + r"[1-9]\d \d{3}(?: \d{2}){2}" + _END, 0.3),
    )
    CONTEXT = (
        "phone", "tel", "tel.", "telephone", "telefon", "téléphone", "telefono", "teléfono", "telefoon", "mobile",
        "mobil", "handy", "cell", "call", "anrufen", "ruf", "appel", "appelez", "chiamare", "chiama", "llamar",
        "llama", "bellen", "bel", "zadzwoń", "zadzwon", "whatsapp", "sms", "text", "fax", "portable", "cellulare",
        "móvil", "movil", "komórka", "komorka", "nummer", "number", "numéro", "numero", "número", "numer", "contact",
        "kontakt", "contatto", "contacto", "reach", "dial",
    )  # fmt: skip
    TRIGGER = r"\d\d[ .\-/)]?\d\d"

    def validate_result(self, pattern_text: str) -> bool | None:
        """True when the form and libphonenumber together make it a phone number; None when only a
        context word can (bare national digits, possible but unassigned numbers); else False."""
        text = _EXTENSION_RE.sub("", pattern_text.strip())
        digits = digits_only(text)
        if not 7 <= len(digits) <= 15:
            return False
        if text.startswith(("+", "00")):
            return self._international(text, digits)
        if _nanp_formatted(text):
            return True
        plausibility = _national_plausibility(digits)
        if plausibility == 0:
            return False
        if digits[0] == "0" or text.startswith("("):
            return True if plausibility == 2 else None
        # No trunk prefix: a national grouping of a valid number is a phone number; bare digits
        # and merely possible numbers are left to context.
        return True if plausibility == 2 and not text.isdigit() else None

    @staticmethod
    def _international(text: str, digits: str) -> bool | None:
        if len(digits) < 8:
            return False
        national = digits[2:] if text.startswith("00") else digits
        try:
            parsed = phonenumbers.parse("+" + national, None)
        except phonenumbers.NumberParseException:
            return False
        if phonenumbers.is_valid_number(parsed):
            return True
        if _nanp_formatted(text):
            return True
        # "00" also starts digit groups of other numbers (IBANs, ids): only a valid number counts.
        if text.startswith("00"):
            return False
        return None if phonenumbers.is_possible_number(parsed) else False

    def normalise(self, text: str) -> str:
        """Digits with a leading + for international numbers (extension included)."""
        digits = digits_only(text)
        t = text.strip()
        if t.startswith("00"):
            return "+" + digits[2:]
        return ("+" if t.startswith("+") else "") + digits
