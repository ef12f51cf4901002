"""PEM private keys (RSA, EC, OpenSSH, PKCS#8, PGP), whole blocks or truncated ones."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelPrivateKeyRecognizer(SovtelRecognizer):
    """A ``-----BEGIN … PRIVATE KEY-----`` block up to its END line, or to the end of the key body."""

    ENTITY = "PRIVATE_KEY"
    PATTERNS = (
        (
            "pem block",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            1.0,
        ),
        # A key cut off by truncation still leaks its body: take the base64 that follows.
        (
            "pem truncated",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\sA-Za-z0-9+/=:,-]|\\n)+",
            0.9,
        ),
    )
    TRIGGER = r"PRIVATE KEY"
