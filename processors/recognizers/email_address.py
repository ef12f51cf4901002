"""E-mail addresses, including internationalised ones, without any network look-up."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelEmailRecognizer(SovtelRecognizer):
    """``local@domain.tld`` with an alphabetic top-level label.

    Presidio's own e-mail recognizer validates with tldextract, which fetches the public suffix
    list over the network; an alphabetic TLD is enough here and needs nothing from outside.
    """

    ENTITY = "EMAIL_ADDRESS"
    PATTERNS = (
        (
            "address",
            r"(?<![\w.%+'-])[\w%+'-]+(?:\.[\w%+'-]+)*@[\w](?:[\w-]*[\w])?(?:\.[\w](?:[\w-]*[\w])?)*\.(?:[^\W\d_]{2,24}|xn--[\w-]+)(?![\w-])",
            0.9,
        ),
    )
    CONTEXT = ("email", "e-mail", "mail", "courriel", "correo", "posta")
    TRIGGER = r"@"

    def normalise(self, text: str) -> str:
        """Addresses compare case-insensitively in practice."""
        return text.strip().casefold()
