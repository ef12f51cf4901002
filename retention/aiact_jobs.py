"""The AI-Act store jobs on an open session: document a model version, record evaluations and incidents,
aggregate the tiers' usage, and export a verified bundle for an auditor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retention.aiact import AggregateReport, Evaluation, Incident, ModelVersion
from retention.audit_jobs import record_read
from retention.ledger import LedgerEntry, Verification, refuse_tampered_tail, verify_ledger
from retention.session import CheckpointOptions, JobSession, checkpoint_keys


def register_model(session: JobSession, model: ModelVersion) -> LedgerEntry:
    """Record a model version's documentation; PersonalDataError if it holds personal data."""
    return session.aiact().register_model(model)


def record_evaluation(session: JobSession, evaluation: Evaluation) -> LedgerEntry:
    """Record an evaluation result of a model version."""
    return session.aiact().record_evaluation(evaluation)


def record_incident(session: JobSession, incident: Incident) -> LedgerEntry:
    """Record an incident or a change of its status."""
    return session.aiact().record_incident(incident)


def aggregate_usage(session: JobSession) -> AggregateReport:
    """Aggregate every complete day of every tier's spans into usage_daily (each day once per tier)."""
    report = AggregateReport()
    aiact = session.aiact()
    for tier in session.tiers:
        aiact.aggregate_usage(tier.store, tier.database, report=report)
    return report


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle's manifest is, and the verification of the ledger it holds."""

    manifest: Path
    verification: Verification

    @property
    def ok(self) -> bool:
        """Whether the exported ledger verified."""
        return self.verification.ok


def export_aiact(session: JobSession, out_dir: Path, checkpoints: CheckpointOptions | None = None
                 ) -> ExportResult:
    """Write a machine-readable bundle of the AI-Act store (manifest with SHA-256 per file), read on the record.

    The ledger is verified first (read-only); an export of a ledger whose newest entries were cut off
    or rewritten is refused with LedgerTamperedError, because its read cannot be recorded after them.
    """
    keys = checkpoint_keys(checkpoints or CheckpointOptions(), session.config)
    verification = verify_ledger(session.ledger, keys.directory, keys.public)
    refuse_tampered_tail(verification, session.ledger.table, "the export")
    record_read(session, "sovtel aiact export")
    # Verified again with the export's own access entry, so the bundle's ledger and its verification agree.
    verification = verify_ledger(session.ledger, keys.directory, keys.public)
    manifest = session.aiact().export(out_dir, verification, checkpoint_dir=keys.directory, signing_key=keys.private,
                                      public_key_file=keys.public_key_file)
    return ExportResult(manifest, verification)
