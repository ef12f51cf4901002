"""The retention and audit jobs' configuration file (``sovtel-jobs.yaml``): tier stores, the AI-Act store,
policies, ledger checkpoints and audit settings; every section is strict (unknown keys are errors).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retention.guard import NerMode
from retention.policies import RetentionPolicies
from sovtel.yamlconfig import ConfigError, Document, SecretRef, load_yaml_model, validate_document
from storage.backend import StoreLocation

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JobsConfigError(ConfigError):
    """The jobs configuration is invalid; ``errors`` holds one line per problem (with its line when read
    from a file)."""

    one_line = True


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} must be a plain identifier (letters, digits, underscore)")
    return value


class TierStore(StoreLocation):
    """A store holding one or more tier databases (``path``, ``dsn`` or ``host`` as for the exporter)."""

    databases: tuple[str, ...] = Field(default=("sovtel",), min_length=1)

    @field_validator("databases")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identifier(v) for v in value)

    @model_validator(mode="after")
    def _location(self) -> TierStore:
        problems = self.location_problems(require=True)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class AiActStoreConfig(StoreLocation):
    """Where the AI-Act database is; without a location, in the first tier store."""

    database: str = "aiact"

    @field_validator("database")
    @classmethod
    def _name(cls, value: str) -> str:
        return _identifier(value)

    @model_validator(mode="after")
    def _location(self) -> AiActStoreConfig:
        problems = self.location_problems(require=False)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LedgerConfig(_Strict):
    """Signed checkpoints of the ledger, kept outside the store."""

    checkpoint_dir: Path | None = Field(default=None, description="Directory (outside the store) for checkpoints.")
    signing_key: SecretRef | None = Field(default=None, description="Ed25519 private key, by reference.")
    public_key: Path | None = Field(default=None, description="PEM public key to verify checkpoints with.")
    actor: str = Field(default="sovtel", min_length=1, description="Who the entries name: a role, not a person.")


class QuasiIdentifierSet(_Strict):
    """Columns that together could single a person out; every combination must occur at least k times."""

    table: str = "spans"
    columns: tuple[str, ...] = Field(min_length=1)
    k: int = Field(default=5, ge=2)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identifier(v) for v in value)


class AuditConfig(_Strict):
    """Thresholds of the audit checks."""

    lookback_hours: float = Field(default=168.0, gt=0, description="Window the data checks look at.")
    heartbeat_gap_s: float = Field(default=300.0, gt=0, description="Longest silence of a collector that is no gap.")
    pii_sample_rows: int = Field(default=200, ge=1, description="Rows sampled per table by the PII leak scan.")
    retention_grace_hours: float = Field(default=0.0, ge=0, description="Slack before a row counts as overdue.")
    quasi_identifiers: tuple[QuasiIdentifierSet, ...] = (
        QuasiIdentifierSet(table="spans", columns=("tenant_id", "node", "request_model"), k=5),
    )
    ner: NerMode = Field(default="auto", description="spaCy person-name NER in PII scans: auto, required or off.")


class ErasureConfig(_Strict):
    """How subjects are found: the key ring of pseudonymisation keys, and the receipt key."""

    keyring: Path | None = None
    digest_hex: int = Field(default=32, ge=16, le=64, description="Hex digits the pseudonymiser keeps.")
    receipt_key: SecretRef | None = Field(default=None, description="HMAC key of receipts (default: active pepper).")


class JobsConfig(_Strict):
    """The whole file."""

    tiers: tuple[TierStore, ...] = ()
    aiact: AiActStoreConfig = AiActStoreConfig()
    retention: RetentionPolicies = RetentionPolicies()
    ledger: LedgerConfig = LedgerConfig()
    audit: AuditConfig = AuditConfig()
    erasure: ErasureConfig = ErasureConfig()


def parse_jobs_config(data: Any, source: str = "<jobs config>") -> JobsConfig:
    """Validate loaded data; raises ``JobsConfigError`` listing every problem with its path."""
    return validate_document(Document(source, data), JobsConfig, error=JobsConfigError)


def load_jobs_config(path: Path) -> JobsConfig:
    """Read and validate a jobs configuration file."""
    return load_yaml_model(path, JobsConfig, error=JobsConfigError)
