"""The users file and authentication: secrets by reference only, every problem reported, and
credentials accepted the ways ClickHouse accepts them, refused otherwise."""

from __future__ import annotations

import base64

import pytest

from storage.serve.auth import Authenticator, AuthSetupError, Credentials, NoAuthentication, request_credentials
from storage.serve.config import Role, ServeConfigError, UserConfig, load_serve_config, parse_serve_config
from storage.serve.errors import AUTHENTICATION_FAILED, REQUIRED_PASSWORD, ServeError

SECRETS = {
    "env:A_TOKEN": "a-token-0123456789abcdef",
    "env:A_PASSWORD": "a-password",
    "env:R_TOKEN": "r-token-0123456789abcdef",
}


def resolve(ref: str) -> str:
    from sovtel.config import SecretError

    if ref not in SECRETS:
        raise SecretError(f"secret {ref}: not set")
    return SECRETS[ref]


@pytest.fixture
def auth() -> Authenticator:
    """An admin with a token and a password, and a reader with a token."""
    return Authenticator([
        UserConfig(name="admin", role=Role.ADMIN, token="env:A_TOKEN", password="env:A_PASSWORD"),
        UserConfig(name="reader", role=Role.READER, token="env:R_TOKEN"),
    ], resolve)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestConfig:
    def test_reads_users_and_limits(self, tmp_path):
        """A valid file gives its users and limits."""
        path = tmp_path / "users.yaml"
        path.write_text("users:\n  - {name: g, role: reader, token: env:G}\nlimits: {max_body_mb: 5}\n")
        config = load_serve_config(path)
        assert [(u.name, u.role) for u in config.users] == [("g", Role.READER)]
        assert config.limits.max_body_mb == 5

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"users": [{"name": "a", "role": "admin", "password": "hunter2hunter2"}]}, "by reference only"),
            ({"users": [{"name": "a", "role": "admin"}]}, "needs a token or a password"),
            ({"users": [{"name": "a", "role": "root", "token": "env:X"}]}, "role"),
            ({"users": [{"name": "a", "role": "admin", "token": "env:X"}] * 2}, "defined twice"),
            ({"users": [{"name": "a b", "role": "admin", "token": "env:X"}]}, "name"),
            ({"users": [], "limits": {"max_body_mb": 0}}, "max_body_mb"),
            ({"users": [], "limits": {"default_session_timeout_s": 10, "max_session_timeout_s": 5}}, "must not exceed"),
            ({"user": []}, "unknown key"),
            ([1, 2], "must be a mapping"),
        ],
    )
    def test_rejects_bad_files(self, data, message):
        """Literal secrets, missing secrets, unknown roles, duplicates and unknown keys are errors."""
        with pytest.raises(ServeConfigError, match=message):
            parse_serve_config(data)

    def test_reports_every_problem(self):
        """All problems of a file come back at once."""
        with pytest.raises(ServeConfigError) as err:
            parse_serve_config({"users": [{"name": "a", "role": "x", "token": "env:X"}], "limits": {"max_sessions": 0},
                                "extra": 1})
        assert len(err.value.errors) == 3


class TestSecrets:
    @pytest.mark.parametrize(
        ("user", "message"),
        [
            (UserConfig(name="a", role=Role.ADMIN, token="env:MISSING"), "MISSING"),
            (UserConfig(name="a", role=Role.ADMIN, password="env:SHORT"), "shorter than 8"),
            (UserConfig(name="a", role=Role.ADMIN, token="env:A_PASSWORD"), "shorter than 16"),
        ],
    )
    def test_unusable_secrets_stop_startup(self, user, message):
        """A secret that is missing or too short is a start-up error naming the user."""
        secrets = {**SECRETS, "env:SHORT": "short"}

        def lookup(ref: str) -> str:
            from sovtel.config import SecretError

            if ref not in secrets:
                raise SecretError(f"secret {ref}: MISSING")
            return secrets[ref]

        with pytest.raises(AuthSetupError, match=message):
            Authenticator([user], lookup)

    def test_shared_tokens_are_refused(self):
        """Two users with one token would be indistinguishable."""
        with pytest.raises(AuthSetupError, match="share a token"):
            Authenticator([UserConfig(name="a", role=Role.ADMIN, token="env:A_TOKEN"),
                           UserConfig(name="b", role=Role.READER, token="env:A_TOKEN")], resolve)

    def test_secrets_are_not_kept_in_clear(self, auth):
        """The authenticator holds digests, not the secrets themselves."""
        state = repr(vars(auth)).encode()
        assert all(secret.encode() not in state for secret in SECRETS.values())


class TestCredentials:
    @pytest.mark.parametrize(
        ("headers", "params", "expected"),
        [
            ({"Authorization": basic("admin", "pw:with:colons")}, {},
             Credentials(user="admin", password="pw:with:colons")),
            ({"Authorization": "Bearer tok"}, {}, Credentials(token="tok")),
            ({"X-ClickHouse-User": "u", "X-ClickHouse-Key": "k"}, {}, Credentials(user="u", password="k")),
            ({"X-ClickHouse-Key": "tok"}, {}, Credentials(token="tok")),
            ({}, {"user": "u", "password": "p"}, Credentials(user="u", password="p")),
            ({}, {}, None),
        ],
    )
    def test_ways_clickhouse_accepts(self, headers, params, expected):
        """Basic auth, bearer tokens, X-ClickHouse-User/-Key and user/password parameters are read."""
        assert request_credentials(headers, params) == expected

    @pytest.mark.parametrize(
        ("headers", "params"),
        [
            ({"Authorization": "Bearer tok"}, {"user": "u"}),
            ({"Authorization": "Bearer tok", "X-ClickHouse-Key": "k"}, {}),
            ({"Authorization": "Digest abc"}, {}),
            ({"Authorization": "Basic !!!"}, {}),
        ],
    )
    def test_mixed_or_malformed_credentials_refused(self, headers, params):
        """Two ways at once, unknown schemes and broken basic auth are authentication failures."""
        with pytest.raises(ServeError) as err:
            request_credentials(headers, params)
        assert err.value.code == AUTHENTICATION_FAILED


class TestAuthenticate:
    @pytest.mark.parametrize(
        ("credentials", "user"),
        [
            (Credentials(token="a-token-0123456789abcdef"), ("admin", Role.ADMIN)),
            (Credentials(user="admin", password="a-password"), ("admin", Role.ADMIN)),
            (Credentials(token="r-token-0123456789abcdef"), ("reader", Role.READER)),
        ],
    )
    def test_accepts_valid_credentials(self, auth, credentials, user):
        """A matching token or user/password gives that user and role."""
        found = auth.authenticate(credentials)
        assert (found.name, found.role) == user

    @pytest.mark.parametrize(
        "credentials",
        [
            Credentials(token="wrong-token-0123456789"),
            Credentials(user="admin", password="wrong"),
            Credentials(user="reader", password="r-token-0123456789abcdef"),
            Credentials(user="nobody", password="a-password"),
            Credentials(user="admin", password=""),
        ],
    )
    def test_refuses_wrong_credentials(self, auth, credentials):
        """Wrong tokens, wrong passwords, token-only users and unknown users get 403."""
        with pytest.raises(ServeError) as err:
            auth.authenticate(credentials)
        assert (err.value.code, err.value.status) == (AUTHENTICATION_FAILED, 403)

    def test_missing_credentials_are_401(self, auth):
        """A request without credentials gets 401."""
        with pytest.raises(ServeError) as err:
            auth.authenticate(None)
        assert (err.value.code, err.value.status) == (REQUIRED_PASSWORD, 401)

    def test_no_authentication_mode_is_admin(self):
        """--insecure-no-auth makes every request the admin user."""
        assert NoAuthentication().authenticate(None).role == Role.ADMIN
