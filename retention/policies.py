"""Retention policies: how long each stream keeps rows (personal, operational, AI-Act) and which tables
belong to which stream; the policies become ClickHouse TTLs (``retention.enforce``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retention.tables import Interval, TableInfo
from storage.clickhouse import PERSONAL_DAYS_MAX, PERSONAL_DAYS_MIN, RetentionConfig

Stream = Literal["personal", "operational", "aiact"]
STREAMS: tuple[Stream, ...] = ("personal", "operational", "aiact")

# The AI Act keeps technical documentation and related records ten years (Art. 18).
AIACT_MIN_YEARS = 10

DEFAULT_PERSONAL_TABLES: tuple[str, ...] = ("spans", "logs", "token_usage", "quality_scores")
# metrics and privacy_budget carry a tenant_id but the schema gives them the operational retention
# (0001, 0300): tenants are organisations there, and a privacy budget must outlive its window. A
# deployment whose tenants are natural persons moves them to personal_tables.
DEFAULT_OPERATIONAL_TABLES: tuple[str, ...] = (
    "metrics",
    "gpu_metrics",
    "pipeline_health",
    "genai_histograms",
    "gpu_request_attribution",
    "quality_rates",
    "quality_comparisons",
    "quality_drift",
    "privacy_budget",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _has_reason(reason: str | None) -> bool:
    return bool(reason and reason.strip())


class PersonalPolicy(_Strict):
    """Personal telemetry (spans, logs, token usage, quality scores): 30 days by default, 30-90 allowed."""

    days: int = Field(default=30, ge=1, description="Days a personal row is kept.")
    override_reason: str | None = Field(
        default=None, description="Why days is outside 30-90; required to leave that window, kept for audit."
    )

    @model_validator(mode="after")
    def _window(self) -> PersonalPolicy:
        inside = PERSONAL_DAYS_MIN <= self.days <= PERSONAL_DAYS_MAX
        if not inside and not _has_reason(self.override_reason):
            raise ValueError(
                f"personal days must be between {PERSONAL_DAYS_MIN} and {PERSONAL_DAYS_MAX} (got {self.days}); "
                "set override_reason to document a deliberate exception"
            )
        return self


class OperationalPolicy(_Strict):
    """Operational, non-personal series (GPU metrics, pipeline health, roll-ups): 13 months by default."""

    days: int = Field(default=395, ge=1, description="Days an operational row is kept.")


class AiActPolicy(_Strict):
    """The AI-Act store (documentation, evaluations, aggregates, incidents, ledger): ten years."""

    years: int = Field(default=AIACT_MIN_YEARS, ge=1, description="Years an AI-Act record is kept (Art. 18: 10).")
    override_reason: str | None = Field(default=None, description="Why years is below ten (e.g. not a provider).")

    @model_validator(mode="after")
    def _minimum(self) -> AiActPolicy:
        if self.years < AIACT_MIN_YEARS and not _has_reason(self.override_reason):
            raise ValueError(
                f"AI-Act records are kept at least {AIACT_MIN_YEARS} years (got {self.years}); "
                "set override_reason to document why this deployment may keep them shorter"
            )
        return self


class RetentionPolicies(_Strict):
    """The three streams and the tables assigned to each; an unlisted table with a subject column is
    personal, any other unlisted table operational (fail closed: unknown identifiers expire soonest)."""

    personal: PersonalPolicy = PersonalPolicy()
    operational: OperationalPolicy = OperationalPolicy()
    aiact: AiActPolicy = AiActPolicy()
    personal_tables: tuple[str, ...] = DEFAULT_PERSONAL_TABLES
    operational_tables: tuple[str, ...] = DEFAULT_OPERATIONAL_TABLES

    @model_validator(mode="after")
    def _disjoint(self) -> RetentionPolicies:
        both = sorted(set(self.personal_tables) & set(self.operational_tables))
        if both:
            raise ValueError(f"tables listed as both personal and operational: {', '.join(both)}")
        return self

    @classmethod
    def from_exporter(cls, config: RetentionConfig) -> RetentionPolicies:
        """The policies a ``clickhouse`` exporter's ``retention`` section describes."""
        return cls(
            personal=PersonalPolicy(days=config.personal_days, override_reason=config.override_reason),
            operational=OperationalPolicy(days=config.operational_days),
            aiact=AiActPolicy(years=config.aiact_years),
        )

    def stream_of(self, table: TableInfo, aiact_database: str) -> Stream:
        """The stream a table belongs to."""
        if table.database == aiact_database:
            return "aiact"
        if table.name in self.personal_tables:
            return "personal"
        if table.name in self.operational_tables:
            return "operational"
        return "personal" if table.subject_columns else "operational"

    def interval(self, stream: Stream) -> Interval:
        """The retention period of a stream."""
        if stream == "personal":
            return Interval(self.personal.days, "DAY")
        if stream == "operational":
            return Interval(self.operational.days, "DAY")
        return Interval(self.aiact.years, "YEAR")

    def describe(self) -> dict[str, object]:
        """The policies as plain data, for the ledger and reports."""
        out: dict[str, object] = {s: str(self.interval(s)) for s in STREAMS}
        if self.personal.override_reason:
            out["personal_override_reason"] = self.personal.override_reason
        if self.aiact.override_reason:
            out["aiact_override_reason"] = self.aiact.override_reason
        return out
