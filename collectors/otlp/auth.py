"""Bearer-token authentication of OTLP requests: a token names the tenant its records belong to."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from collectors.otlp.config import AuthSettings


class AuthError(Exception):
    """A token reference could not be resolved at start-up."""


class Authenticator:
    """Maps an ``Authorization`` header (or gRPC ``authorization`` metadata) to the token's tenant.

    Tokens are resolved once at start; every presented token is compared in constant time against
    each known one, so timing does not reveal how much of a guess was right.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(token.encode(), tenant) for token, tenant in tokens.items()]

    @classmethod
    def from_settings(cls, settings: AuthSettings, resolve: Callable[[str], str]) -> Authenticator:
        """Resolve each token reference; raises AuthError naming a reference that fails or is empty."""
        tokens: dict[str, str] = {}
        for i, entry in enumerate(settings.bearer_tokens):
            try:
                value = resolve(entry.token)
            except Exception as exc:
                raise AuthError(f"auth.bearer_tokens[{i}]: {exc}") from exc
            if not value:
                raise AuthError(f"auth.bearer_tokens[{i}]: {entry.token} is empty")
            if value in tokens and tokens[value] != entry.tenant:
                raise AuthError(f"auth.bearer_tokens[{i}]: the same token is bound to two tenants")
            tokens[value] = entry.tenant
        return cls(tokens)

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of a valid ``Bearer <token>`` header value, else None."""
        if not authorization:
            return None
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        candidate = presented.strip().encode()
        found: str | None = None
        for token, tenant in self._tokens:
            if hmac.compare_digest(candidate, token):
                found = tenant
        return found
