"""The ``sovtel serve`` users file: who may connect (tokens and passwords by reference only), with
which role, and the server's limits; ``load_serve_config`` reports every problem at once.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovtel.yamlconfig import ConfigError, Document, SecretRef, load_yaml_model, validate_document

NOT_A_MAPPING = "the file must be a mapping with a 'users' list"


class Role(StrEnum):
    """What a user may do: ``reader`` reads, ``writer`` also inserts, ``admin`` may do anything."""

    ADMIN = "admin"
    WRITER = "writer"
    READER = "reader"


class UserConfig(BaseModel):
    """One user: a bearer ``token`` and/or a ``password`` (for basic auth), given as env:/file: references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    token: SecretRef | None = Field(default=None, description="Bearer / X-ClickHouse-Key token (at least 16 chars).")
    password: SecretRef | None = Field(default=None, description="Password for basic auth (at least 8 chars).")

    @model_validator(mode="after")
    def _has_a_secret(self) -> UserConfig:
        if self.token is None and self.password is None:
            raise ValueError(f"user {self.name!r} needs a token or a password (env:NAME or file:PATH)")
        return self


class Limits(BaseModel):
    """Bounds that keep one client from exhausting the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_mb: int = Field(default=1024, ge=1, description="Largest request body, on the wire and decompressed.")
    max_query_kb: int = Field(default=1024, ge=1, description="Largest statement text (INSERT data excluded).")
    max_concurrent_queries: int = Field(default=64, ge=1)
    max_connections: int = Field(default=256, ge=1, description="Open client connections (each holds a thread).")
    max_sessions: int = Field(default=1000, ge=1)
    default_session_timeout_s: int = Field(default=60, ge=1)
    max_session_timeout_s: int = Field(default=3600, ge=1)
    idle_connection_timeout_s: int = Field(
        default=620, ge=1, description="Idle keep-alive connections close after this many seconds.")

    @model_validator(mode="after")
    def _timeouts(self) -> Limits:
        if self.default_session_timeout_s > self.max_session_timeout_s:
            raise ValueError("default_session_timeout_s must not exceed max_session_timeout_s")
        return self


class ServeConfig(BaseModel):
    """The whole users file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[UserConfig] = Field(default_factory=list)
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        seen: set[str] = set()
        for user in self.users:
            if user.name in seen:
                raise ValueError(f"user {user.name!r} is defined twice")
            seen.add(user.name)
        return self


class ServeConfigError(ConfigError):
    """The users file is invalid; ``errors`` has one line per problem (with its line when read from a file)."""

    one_line = True


def parse_serve_config(data: Any, source: str = "<serve config>") -> ServeConfig:
    """Validate an already-loaded mapping; raises ``ServeConfigError`` listing every problem."""
    return validate_document(Document(source, data), ServeConfig, error=ServeConfigError, not_a_mapping=NOT_A_MAPPING)


def load_serve_config(path: Path) -> ServeConfig:
    """Read and validate a users file."""
    return load_yaml_model(path, ServeConfig, error=ServeConfigError, not_a_mapping=NOT_A_MAPPING)
