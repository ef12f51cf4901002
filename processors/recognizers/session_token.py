"""Session identifiers and OAuth tokens in cookies, query strings and key=value text."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelSessionTokenRecognizer(SovtelRecognizer):
    """The value after a session, cookie or OAuth token name (``JSESSIONID=…``, ``refresh_token: …``)."""

    ENTITY = "SESSION_TOKEN"
    PATTERNS = (
        (
            "named token",
            r"(?<=\b(?i:session(?:[_-]?(?:id|token|key))?|sessid|sid|phpsessid|jsessionid|asp\.net_sessionid|connect\.sid"
            r"|csrf[_-]?token|xsrf[_-]?token|refresh[_-]?token|access[_-]?token|id[_-]?token|auth[_-]?token"
            r"|oauth[_-]?token|remember[_-]?token|set-cookie|cookie)[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z0-9_.-]+=)?)"
            r"[A-Za-z0-9%._~+/-]{16,}=*",
            0.85,
        ),
        # "session 8f14e45fceea167a… expired": a token right after the word, with letters and digits.
        (
            "session word",
            r"(?<=\b(?i:session|sitzung|sesión|sessione|sessie|sesja)(?:[ _-]?(?i:id))?:?[ \t]+)"
            r"(?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])[A-Za-z0-9_]{16,}(?![\w-])",
            0.75,
        ),
    )
    TRIGGER = r"(?i)sess|sid|token|cookie|sitzung|sesión|sesja"
