"""Credentials in HTTP authorisation headers: bearer, basic and token schemes."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelAuthTokenRecognizer(SovtelRecognizer):
    """The credential after ``Bearer``/``Basic``/``Token`` or an ``Authorization:`` header."""

    ENTITY = "AUTH_TOKEN"
    PATTERNS = (
        ("scheme", r"(?<=\b(?i:bearer|basic)\s+)[A-Za-z0-9._~+/-]{12,}=*", 0.85),
        (
            "authorization header",
            r"(?<=\b(?i:authorization|proxy-authorization)[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|basic|token|digest)\s+)?)[A-Za-z0-9._~+/-]{8,}=*",
            0.85,
        ),
    )
    TRIGGER = r"(?i)bearer|basic|authorization"
