"""JSON Web Tokens (signed JWS and encrypted JWE compact forms)."""

from __future__ import annotations

import base64
import json

from processors.recognizers.base import SovtelRecognizer


class SovtelJwtRecognizer(SovtelRecognizer):
    """``eyJ…`` header and payload segments in base64url; the header must decode to a JOSE header."""

    ENTITY = "JWT"
    PATTERNS = (("jws/jwe", r"(?<![\w-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){1,3}", 0.8),)
    TRIGGER = r"eyJ"

    def validate_result(self, pattern_text: str) -> bool | None:
        """True when the first segment is a JSON header with ``alg`` or ``typ``; otherwise no opinion."""
        head = pattern_text.split(".", 1)[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        except (ValueError, UnicodeDecodeError):
            return None
        return True if isinstance(header, dict) and ("alg" in header or "typ" in header) else None
