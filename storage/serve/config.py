"""The ``sovtel serve`` users file: who may connect (tokens and passwords by reference only), with
which role, each role's settings profile (limits and the constraints users cannot step outside) and the
server's limits; ``load_serve_config`` reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    max_server_memory_mb: int | None = Field(
        default=None, ge=64, description="The engine's memory for all queries together (its "
        "max_server_memory_usage); queries beyond it fail with MEMORY_LIMIT_EXCEEDED. Default: the engine's.")
    default_session_timeout_s: int = Field(default=60, ge=1)
    max_session_timeout_s: int = Field(default=3600, ge=1)
    idle_connection_timeout_s: int = Field(
        default=620, ge=1, description="Idle keep-alive connections close after this many seconds.")

    @model_validator(mode="after")
    def _timeouts(self) -> Limits:
        if self.default_session_timeout_s > self.max_session_timeout_s:
            raise ValueError("default_session_timeout_s must not exceed max_session_timeout_s")
        return self


SettingValue = int | float | str
# Settings the role itself decides (readonly for readers, allow_ddl for writers) and the profile switch.
ROLE_DECIDED_SETTINGS = frozenset({"readonly", "allow_ddl", "profile"})
_SETTING_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
GiB = 1 << 30


class SettingConstraint(BaseModel):
    """Bounds a user cannot step outside, as ClickHouse's ``<constraints>``: ``min``/``max`` for numbers,
    ``const`` for a setting that may not be changed at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | float | None = None
    max: int | float | None = None
    const: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SettingConstraint:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class RoleProfile(BaseModel):
    """One role's settings profile: the engine settings its connections start with, the constraints on
    them, and how many of the role's queries may run at once.

    A positive numeric setting without an explicit constraint is capped at its own value (``min: 1``,
    ``max: value``): users may lower a limit, never raise it or turn it off (0 means "no limit" to the
    engine). ``constraints`` may name settings the profile does not set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrent_queries: int | None = Field(
        default=None, ge=1, description="Queries of this role (all its users together) running at once.")
    queue_max_wait_ms: int = Field(
        default=5000, ge=0, description="How long a query waits for one of its role's slots before 202.")
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    constraints: dict[str, SettingConstraint] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> RoleProfile:
        names = (*self.settings, *self.constraints)
        problems = [f"{name!r} is not a setting name" for name in names if not re.match(_SETTING_NAME, name)]
        problems += [f"{name!r} is decided by the role, not by its profile" for name in names
                     if name.lower() in ROLE_DECIDED_SETTINGS]
        for name, constraint in self.effective_constraints().items():
            value = self.settings.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if constraint.min is not None and value < constraint.min:
                problems.append(f"settings.{name} = {value} is below its constraint's min {constraint.min}")
            if constraint.max is not None and value > constraint.max:
                problems.append(f"settings.{name} = {value} is above its constraint's max {constraint.max}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def effective_constraints(self) -> dict[str, SettingConstraint]:
        """The explicit constraints, plus ``min: 1, max: value`` for each positive numeric setting without one."""
        derived = {
            name: SettingConstraint(min=1, max=value) for name, value in self.settings.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        }
        return {**derived, **self.constraints}


# The defaults keep one reader from hurting the service (a dashboard query needs far less); writers
# insert large batches; admins run migrations and retention, which may take long.
DEFAULT_PROFILES: Mapping[Role, RoleProfile] = {
    Role.READER: RoleProfile(max_concurrent_queries=4, settings={
        "max_memory_usage": 1 * GiB,
        "max_execution_time": 60,
        "max_rows_to_read": 5_000_000_000,
        "max_result_rows": 10_000_000,
        "max_result_bytes": 1 * GiB,
        "result_overflow_mode": "throw",
    }),
    Role.WRITER: RoleProfile(max_concurrent_queries=16, settings={
        "max_memory_usage": 4 * GiB,
        "max_execution_time": 600,
    }),
    Role.ADMIN: RoleProfile(),
}


class Profiles(BaseModel):
    """A settings profile per role; what a file gives is laid over the role's defaults setting by setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader: RoleProfile = DEFAULT_PROFILES[Role.READER]
    writer: RoleProfile = DEFAULT_PROFILES[Role.WRITER]
    admin: RoleProfile = DEFAULT_PROFILES[Role.ADMIN]

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for role in Role:
            given = data.get(str(role))
            if not isinstance(given, dict):
                continue
            default = DEFAULT_PROFILES[role]
            out = dict(given)
            if isinstance(given.get("settings", {}), dict):
                out["settings"] = {**default.settings, **given.get("settings", {})}
            if isinstance(given.get("constraints", {}), dict):
                out["constraints"] = {**{k: v.model_dump() for k, v in default.constraints.items()},
                                      **given.get("constraints", {})}
            out.setdefault("max_concurrent_queries", default.max_concurrent_queries)
            out.setdefault("queue_max_wait_ms", default.queue_max_wait_ms)
            merged[str(role)] = out
        return merged

    def of(self, role: Role) -> RoleProfile:
        """The profile of ``role``."""
        profile: RoleProfile = getattr(self, str(role))
        return profile


class ServeConfig(BaseModel):
    """The whole users file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[UserConfig] = Field(default_factory=list)
    profiles: Profiles = Profiles()
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
