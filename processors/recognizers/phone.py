"""Telephone numbers in international (+49 …, 0049 …) and common European national formats."""

from __future__ import annotations

import phonenumbers

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import digits_only

# Regions whose national formats are tried for numbers written without a country code.
NATIONAL_REGIONS: tuple[str, ...] = ("DE", "FR", "IT", "ES", "NL", "PL", "AT", "BE", "GB", "IE", "PT", "CH")


class SovtelPhoneRecognizer(SovtelRecognizer):
    """A number with a country code, validated by libphonenumber (offline metadata); national
    formats only next to a context word, and only if valid in a European numbering plan."""

    ENTITY = "PHONE_NUMBER"
    PATTERNS = (
        (
            "international",
            r"(?<![\w+])(?:\+|00)[1-9]\d{0,3}(?:[ .\-/]?\(0\))?(?:[ .\-/]?\(?\d{1,5}\)?){1,6}(?!\w)",
            0.5,
        ),
        (
            "national trunk 0",
            r"(?<![\w+.,/-])\(?0\d{1,4}\)?[ .\-/]?\d{2,4}(?:[ .\-/]?\d{2,4}){1,3}(?![\w-]|[.,/]\d)",
            0.3,
        ),
        ("national mobile", r"(?<![\w+.,/-])[3-9]\d{2}[ .-]?\d{3}[ .-]?\d{3,4}(?![\w-]|[.,/]\d)", 0.3),
        ("national 3-2-2-2", r"(?<![\w+.,/-])[3-9]\d{2}(?:[ .-]\d{2}){3}(?![\w-]|[.,/]\d)", 0.3),
    )
    CONTEXT = (
        "phone", "tel", "telephone", "telefon", "téléphone", "telefono", "teléfono", "telefoon", "mobile", "mobil",
        "handy", "cell", "call", "anrufen", "ruf", "appel", "chiamare", "chiama", "llamar", "llama", "bellen", "bel",
        "zadzwoń", "zadzwon", "whatsapp", "sms", "fax", "portable", "cellulare", "móvil", "movil", "komórka", "komorka",
        "nummer", "number", "numéro", "numero", "número", "numer", "contact", "kontakt", "contatto", "contacto",
    )  # fmt: skip
    TRIGGER = r"\d{2}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Valid with its country code → True; a national number valid in a European plan → no
        opinion (context decides); anything else → False."""
        digits = digits_only(pattern_text)
        text = pattern_text.strip()
        if text.startswith(("+", "00")):
            if len(digits) < 8:
                return False
            number = "+" + (digits[2:] if text.startswith("00") else digits)
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                return False
            if phonenumbers.is_valid_number(parsed):
                return True
            # "00" also starts digit groups of other numbers (IBANs, ids): only a valid number counts.
            if text.startswith("00"):
                return False
            return None if phonenumbers.is_possible_number(parsed) else False
        if len(digits) < 8:
            return False
        for region in NATIONAL_REGIONS:
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                    return None
            except phonenumbers.NumberParseException:
                continue
        return False

    def normalise(self, text: str) -> str:
        """Digits with a leading + for international numbers."""
        digits = digits_only(text)
        t = text.strip()
        if t.startswith("00"):
            return "+" + digits[2:]
        return ("+" if t.startswith("+") else "") + digits
