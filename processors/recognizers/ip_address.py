"""IPv4 and IPv6 addresses (optionally with a prefix length), except loopback and unspecified."""

from __future__ import annotations

import ipaddress

from processors.recognizers.base import SovtelRecognizer

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


class SovtelIpAddressRecognizer(SovtelRecognizer):
    """Addresses that ``ipaddress`` accepts; loopback and 0.0.0.0/:: identify nobody and stay."""

    ENTITY = "IP_ADDRESS"
    PATTERNS = (
        # A leading "v" is captured so that version strings (v1.2.3.4) can be told apart.
        ("ipv4", rf"(?<![\w.])v?{_OCTET}(?:\.{_OCTET}){{3}}(?:/\d{{1,2}})?(?![\w]|\.\d)", 0.8),
        (
            "ipv6",
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
            r"(?:%[\w.]+)?(?:/\d{1,3})?(?![\w:])",
            0.6,
        ),
    )  # fmt: skip
    CONTEXT = ("ip", "address", "adresse", "indirizzo", "dirección", "adres", "client", "host", "remote")
    TRIGGER = r"\d\.\d|:[0-9A-Fa-f]*:"

    def validate_result(self, pattern_text: str) -> bool | None:
        """True for a parseable address; False for anything else."""
        text = pattern_text.split("/", 1)[0].split("%", 1)[0]
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Version strings (``v1.2.3.4``), loopback and unspecified addresses, and networks of at
        least a /24 (IPv4) or /48 (IPv6), as ``generalise`` writes them, are not personal data."""
        if pattern_text.startswith("v"):
            return True
        text, _, prefix = pattern_text.partition("/")
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return True
        if prefix.isdigit():
            network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
            coarse = network.prefixlen <= (24 if addr.version == 4 else 48)
            if coarse and network.network_address == addr:
                return True
        return addr.is_loopback or addr.is_unspecified

    def normalise(self, text: str) -> str:
        """The canonical (compressed) address text."""
        try:
            return str(ipaddress.ip_address(text.split("/", 1)[0].split("%", 1)[0]))
        except ValueError:
            return text.strip()
