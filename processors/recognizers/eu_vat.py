"""EU VAT identification numbers of all member states; check digits where the algorithm is public."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, eu_vat_check

_FORMATS = (
    r"ATU\d{8}|BE[01]\d{9}|BG\d{9,10}|CY\d{8}[A-Z]|CZ\d{8,10}|DE\d{9}|DK\d{8}|EE\d{9}|EL\d{9}"
    r"|ES[A-Z0-9]\d{7}[A-Z0-9]|FI\d{8}|FR[A-HJ-NP-Z0-9]{2}\d{9}|HR\d{11}|HU\d{8}|IE\d[A-Z0-9+*]\d{5}[A-Z]{1,2}"
    r"|IT\d{11}|LT(?:\d{9}|\d{12})|LU\d{8}|LV\d{11}|MT\d{8}|NL\d{9}B\d{2}|PL\d{10}|PT\d{9}|RO\d{2,10}"
    r"|SE\d{12}|SI\d{8}|SK\d{10}"
)


class SovtelEuVatRecognizer(SovtelRecognizer):
    """A country prefix and the national VAT format (``DE123456789``, ``FR40303265045``, ``NL…B01``)."""

    ENTITY = "EU_VAT"
    PATTERNS = (
        ("compact", rf"(?<![\w-])(?:{_FORMATS})(?![\w-])", 0.6),
        # Written with a space or dash after the country code, or grouped digits.
        ("spaced", r"(?<![\w-])(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK)"
                   r"[ -]?[A-Z0-9]{1,3}(?:[ .-]?[0-9A-Z]{2,4}){2,4}(?![\w-])", 0.3),
    )  # fmt: skip
    CONTEXT = ("vat", "ust", "umsatzsteuer", "tva", "iva", "btw", "nip", "tax", "steuer", "partita", "cif", "nif")
    TRIGGER = r"(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK)[ -]?[U0-9A-Z]"

    def validate_result(self, pattern_text: str) -> bool | None:
        """The national check digits where known; a compact id must also fit its country's format."""
        compact = alnum_upper(pattern_text)
        return eu_vat_check(compact)

    def normalise(self, text: str) -> str:
        """Compact upper case."""
        return alnum_upper(text)
