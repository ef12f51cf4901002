"""Who is asking: credentials as ClickHouse accepts them (basic auth, bearer token, ``X-ClickHouse-User``
/``-Key`` headers, ``user``/``password`` parameters) checked against secrets held only as salted hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sovtel.config import SecretError, resolve_secret
from storage.serve.config import Role, UserConfig
from storage.serve.errors import AUTHENTICATION_FAILED, REQUIRED_PASSWORD, ServeError

MIN_TOKEN_CHARS = 16
MIN_PASSWORD_CHARS = 8


@dataclass(frozen=True)
class User:
    """An authenticated user and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a bearer ``token``, or a ``user`` with a ``password``."""

    user: str | None = None
    password: str | None = None
    token: str | None = None


class AuthSetupError(Exception):
    """Users cannot be loaded (a secret is missing or too short); ``errors`` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


def request_credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials | None:
    """The credentials of a request, or None when it carries none.

    Like ClickHouse, one request may use only one way: the ``Authorization`` header, the
    ``X-ClickHouse-User``/``-Key`` headers, or the ``user``/``password`` URL parameters. A
    ``X-ClickHouse-Key`` without a user is taken as a token.
    """
    authorization = headers.get("Authorization")
    ch_user, ch_key = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
    p_user, p_password = params.get("user"), params.get("password")
    ways = [authorization is not None, ch_user is not None or ch_key is not None,
            p_user is not None or p_password is not None]
    if sum(ways) > 1:
        raise ServeError(AUTHENTICATION_FAILED, "Invalid authentication: use only one of the Authorization header, "
                         "the X-ClickHouse-User/X-ClickHouse-Key headers or the user/password parameters")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return Credentials(token=value.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ServeError(AUTHENTICATION_FAILED, "Invalid Basic authorization header") from None
            user, _, password = decoded.partition(":")
            return Credentials(user=user, password=password)
        raise ServeError(AUTHENTICATION_FAILED, "Unsupported Authorization scheme (use Basic or Bearer)")
    if ch_user is not None or ch_key is not None:
        if ch_user is None:
            return Credentials(token=ch_key)
        return Credentials(user=ch_user, password=ch_key or "")
    if p_user is not None or p_password is not None:
        return Credentials(user=p_user or "default", password=p_password or "")
    return None


class Authenticator:
    """Checks credentials against the configured users.

    Secrets are resolved once at start-up and kept only as HMAC-SHA256 digests under a random
    per-process key; every comparison is constant-time and a token is compared with every user's,
    so the time taken does not depend on which (if any) user matched.
    """

    def __init__(self, users: Sequence[UserConfig], resolve: Callable[[str], str] = resolve_secret) -> None:
        self._key = secrets.token_bytes(32)
        self._tokens: list[tuple[bytes, User]] = []
        self._passwords: dict[str, tuple[bytes, User]] = {}
        self._dummy = self._digest(secrets.token_hex(16))
        errors: list[str] = []
        seen_tokens: dict[bytes, str] = {}
        for cfg in users:
            user = User(cfg.name, cfg.role)
            secrets_of_user = (("token", cfg.token, MIN_TOKEN_CHARS), ("password", cfg.password, MIN_PASSWORD_CHARS))
            for kind, ref, minimum in secrets_of_user:
                if ref is None:
                    continue
                try:
                    value = resolve(ref)
                except SecretError as exc:
                    errors.append(f"user {cfg.name}: {exc}")
                    continue
                if len(value) < minimum:
                    errors.append(f"user {cfg.name}: the {kind} from {ref} is shorter than {minimum} characters")
                    continue
                digest = self._digest(value)
                if kind == "token":
                    if digest in seen_tokens:
                        errors.append(f"users {seen_tokens[digest]} and {cfg.name} share a token")
                    seen_tokens[digest] = cfg.name
                    self._tokens.append((digest, user))
                else:
                    self._passwords[cfg.name] = (digest, user)
        if errors:
            raise AuthSetupError(errors)
        self.users = tuple(User(u.name, u.role) for u in users)

    def _digest(self, secret: str) -> bytes:
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).digest()

    def authenticate(self, credentials: Credentials | None) -> User:
        """The user these credentials belong to; raises ``ServeError`` (401 without, 403 with wrong ones)."""
        if credentials is None:
            raise ServeError(REQUIRED_PASSWORD, "Authentication required: send a bearer token or a user and password")
        if credentials.token is not None:
            digest = self._digest(credentials.token)
            found: User | None = None
            for candidate, user in self._tokens:
                if hmac.compare_digest(candidate, digest):
                    found = user
            if found is not None:
                return found
            raise ServeError(AUTHENTICATION_FAILED, "Authentication failed: the token is not valid")
        name = credentials.user or "default"
        digest = self._digest(credentials.password or "")
        known = self._passwords.get(name)
        expected = known[0] if known is not None else self._dummy
        if hmac.compare_digest(expected, digest) and known is not None:
            return known[1]
        raise ServeError(AUTHENTICATION_FAILED,
                         f"{name}: Authentication failed: password is incorrect, or there is no user with such name")


class NoAuthentication:
    """``--insecure-no-auth``: every request is the admin user ``default`` (loopback development only)."""

    users: tuple[User, ...] = (User("default", Role.ADMIN),)

    def authenticate(self, credentials: Credentials | None) -> User:
        """Always the admin user, whatever was sent."""
        return self.users[0]
