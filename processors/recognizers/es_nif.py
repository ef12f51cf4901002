"""Spanish personal tax ids: DNI (8 digits + letter) and NIE (X/Y/Z + 7 digits + letter)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, es_nif_valid


class SovtelEsNifRecognizer(SovtelRecognizer):
    """A DNI or NIE whose control letter (mod 23) verifies."""

    ENTITY = "ES_NIF"
    PATTERNS = (
        # Dots group all three parts or none, and no time may precede: the fraction of a timestamp
        # (``…:04.630008Z``) is no DNI, though its digits pass the mod-23 letter one time in 23.
        ("dni", r"(?<![\w.:-])\d{2}(?:\.\d{3}\.\d{3}|\d{6})[ -]?[A-Za-z](?![\w-])", 0.5),
        ("nie", r"(?<![\w-])[XYZxyz][ -]?\d{7}[ -]?[A-Za-z](?![\w-])", 0.5),
    )
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "tax",
        "dni",
        "nie",
        "nif",
        "documento",
        "identidad",
        "id",
    )
    TRIGGER = r"\d{7}|\d\.\d{3}"

    def validate_result(self, pattern_text: str) -> bool:
        """True when the control letter matches."""
        return es_nif_valid(alnum_upper(pattern_text))

    def normalise(self, text: str) -> str:
        """Compact upper case."""
        return alnum_upper(text)
