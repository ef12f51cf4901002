"""The audit jobs on an open session: run every audit check (with its evidence report and gauges), verify
the ledger against its signed checkpoints, and sign the ledger head now.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from retention.audit import AuditContext, AuditRun, run_audit
from retention.checkpoints import Checkpoint
from retention.config import AuditConfig
from retention.ledger import Verification, verify_ledger
from retention.metrics import ComplianceMetrics
from retention.report import write_report
from retention.session import (
    CheckpointKeys,
    CheckpointOptions,
    JobInputError,
    JobProblem,
    JobSession,
    Progress,
    checkpoint_keys,
    no_progress,
)


@dataclass(frozen=True)
class AuditThresholds:
    """Audit settings that replace the configuration's for one run (None keeps the configured one)."""

    lookback_hours: float | None = None
    heartbeat_gap_s: float | None = None
    grace_hours: float | None = None
    pii_sample_rows: int | None = None

    def apply_to(self, base: AuditConfig) -> AuditConfig:
        """``base`` with these overrides."""
        overrides = {k: v for k, v in (("lookback_hours", self.lookback_hours),
                                       ("heartbeat_gap_s", self.heartbeat_gap_s),
                                       ("retention_grace_hours", self.grace_hours),
                                       ("pii_sample_rows", self.pii_sample_rows)) if v is not None}
        return AuditConfig(**{**base.model_dump(), **overrides})


@dataclass(frozen=True)
class AuditOutputs:
    """Where an audit run's evidence goes besides the ledger: HTML report, gauge textfile, Pushgateway."""

    html: Path | None = None
    metrics_textfile: Path | None = None
    pushgateway: str | None = None


@dataclass
class AuditResult:
    """The audit run, and why pushing its gauges failed (pushing is best effort)."""

    run: AuditRun
    push_error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return self.run.ok


def run_audit_job(session: JobSession, *, checkpoints: CheckpointOptions | None = None,
                  thresholds: AuditThresholds = AuditThresholds(), outputs: AuditOutputs = AuditOutputs(),
                  progress: Progress = no_progress) -> AuditResult:
    """Run every audit check, record it in the ledger, sign the ledger head, then write the evidence.

    Raises CheckpointError (unusable key) and the store's, catalog's and ledger's errors as they come.
    """
    keys = checkpoint_keys(checkpoints or CheckpointOptions(), session.config)
    ctx = AuditContext(session.tiers, session.aiact_store, session.aiact_database, session.ledger,
                       session.config.retention, thresholds.apply_to(session.config.audit), session.guard,
                       keys.directory, keys.public)
    progress("running audit checks")
    run = run_audit(ctx)
    if keys.directory is not None and keys.private is not None:
        session.ledger.checkpoint(keys.directory, keys.private)
    result = AuditResult(run)
    metrics = ComplianceMetrics(CollectorRegistry())
    metrics.publish_audit(run, time.time())
    if outputs.metrics_textfile is not None:
        metrics.write_textfile(outputs.metrics_textfile)
    if outputs.pushgateway:
        try:
            metrics.push(outputs.pushgateway)
        except OSError as exc:
            result.push_error = str(exc)
    if outputs.html is not None:
        write_report(run, outputs.html)
    return result


@dataclass
class LedgerVerification:
    """A ledger's verification and which ledger it was."""

    database: str
    verification: Verification = field(default_factory=Verification)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return self.verification.ok


def record_read(session: JobSession, source: str) -> None:
    """Record in the ledger that ``source`` reads the AI-Act store (the read joins the chain it reads)."""
    session.ledger.append("access", {"source": source, "access_id": secrets.token_hex(8),
                                     "reads": {"aiact": session.aiact_database}})


def verify_ledger_job(session: JobSession, checkpoints: CheckpointOptions | None = None
                      ) -> LedgerVerification:
    """Verify the ledger's hash chain against the signed checkpoints.

    JobInputError when checkpoints are given without a key to verify them, JobProblem when there is no ledger.
    """
    keys = checkpoint_keys(checkpoints or CheckpointOptions(), session.config)
    if keys.directory is not None and keys.public is None:
        raise JobInputError("checkpoints need --public-key FILE or --signing-key REF to be verified")
    if not session.ledger.exists():
        raise JobProblem(f"no ledger in {session.aiact_database} ({session.aiact_store.target})")
    record_read(session, "sovtel audit verify")
    return LedgerVerification(session.aiact_database, verify_ledger(session.ledger, keys.directory, keys.public))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint written, and the file it was written to."""

    checkpoint: Checkpoint
    path: Path


def sign_ledger_head(session: JobSession, checkpoints: CheckpointOptions | None = None) -> SignedCheckpoint:
    """Sign the ledger head now and write the checkpoint outside the store.

    JobInputError without a checkpoint directory and signing key, JobProblem when the ledger is empty.
    """
    keys: CheckpointKeys = checkpoint_keys(checkpoints or CheckpointOptions(), session.config)
    if keys.directory is None or keys.private is None:
        raise JobInputError("give --checkpoints DIR and --signing-key REF (or set them in the config)")
    cp = session.ledger.checkpoint(keys.directory, keys.private)
    if cp is None:
        raise JobProblem("the ledger is empty: nothing to checkpoint")
    return SignedCheckpoint(cp, keys.directory / cp.filename)
