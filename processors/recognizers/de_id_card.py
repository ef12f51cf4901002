"""German identity card (Personalausweis) and passport serial numbers."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.checksums import alnum_upper, de_id_card_valid


class SovtelDeIdCardRecognizer(SovtelRecognizer):
    """Nine characters from the document alphabet and a 7-3-1 check digit (``T22000129 3``)."""

    ENTITY = "DE_ID_CARD"
    PATTERNS = (("serial", r"(?<![\w-])[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8} ?\d(?![\w-])", 0.4),)
    CONTEXT = (
        "national",
        "identity",
        "identification",
        "id number",
        "ausweis",
        "personalausweis",
        "reisepass",
        "passport",
        "id card",
        "ausweisnummer",
        "dokument",
        "document",
        "nummer",
    )
    TRIGGER = r"[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}"

    def validate_result(self, pattern_text: str) -> bool | None:
        """Reject serials whose check digit fails; passing ones still need a context word."""
        return None if de_id_card_valid(alnum_upper(pattern_text)) else False

    def normalise(self, text: str) -> str:
        """Compact upper case."""
        return alnum_upper(text)
