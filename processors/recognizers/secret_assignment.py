"""Secrets written as assignments (``password=…``, ``"api_key": "…"``, ``AWS_SECRET_ACCESS_KEY=…``)."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelSecretAssignmentRecognizer(SovtelRecognizer):
    """The value assigned to a password, secret or API-key name, whatever its format."""

    ENTITY = "SECRET"
    PATTERNS = (
        (
            "assignment",
            r"(?<=\b(?i:password|passwd|passwort|mot de passe|contraseña|wachtwoord|hasło|pwd|pass|secret"
            r"|client[_-]?secret"
            r"|api[_-]?key|apikey|x-api-key|api[_-]?token|access[_-]?key|secret[_-]?key|aws_secret_access_key"
            r"|private[_-]?key|accountkey|sharedaccesskey|credentials?)[\"']?\s*(?:[:=]|\bis\b|\bist\b|\best\b|è|es)\s*[\"']?)"
            r"[^\s\"'<>,;]{6,}",
            0.8,
        ),
    )
    TRIGGER = r"(?i)pass|pwd|secret|key|cred|contraseña|wachtwoord|hasło|mot de passe"

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """An already masked value (``<TYPE:…>``) or a bare placeholder is not a secret."""
        return pattern_text.startswith("<") or set(pattern_text) <= {"*", "x", "X", "."}
