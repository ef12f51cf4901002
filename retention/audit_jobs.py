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
from retention.ledger import (
    LedgerTamperedError,
    Problem,
    Verification,
    refuse_tampered_tail,
    tail_problems,
    verify_ledger,
)
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
    if keys.directory is not None and keys.public is not None:
        # Read-only first: a run records its reads and its result in the ledger, which must not be
        # extended after a tail that was cut off or rewritten (LedgerTamperedError, nothing written).
        progress("verifying the ledger")
        refuse_tampered_tail(verify_ledger(session.ledger, keys.directory, keys.public), session.ledger.table,
                             "the audit run")
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
    """A ledger's verification, which ledger it was, and the access entry recording the read (or why none)."""

    database: str
    verification: Verification = field(default_factory=Verification)
    access_seq: int | None = None
    access_refused: str | None = None

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return self.verification.ok


def record_read(session: JobSession, source: str) -> int:
    """Record in the ledger that ``source`` reads the AI-Act store (the read joins the chain it reads); its seq.

    LedgerTamperedError when the ledger's newest entries were removed (nothing is written then).
    """
    entry = session.ledger.append("access", {"source": source, "access_id": secrets.token_hex(8),
                                             "reads": {"aiact": session.aiact_database}})
    return entry.seq


def verify_ledger_job(session: JobSession, checkpoints: CheckpointOptions | None = None
                      ) -> LedgerVerification:
    """Verify the ledger's hash chain against the signed checkpoints, then record the read.

    Verification only reads, so it works on any ledger, however tampered. The read is then recorded
    unless the chain's newest entries were cut off or rewritten: an entry appended there would reuse
    the numbers of removed entries, so the result says why the read was not recorded instead (and a
    truncation the append runs into is itself reported as a problem). JobInputError when checkpoints
    are given without a key to verify them, JobProblem when there is no ledger.
    """
    keys = checkpoint_keys(checkpoints or CheckpointOptions(), session.config)
    if keys.directory is not None and keys.public is None:
        raise JobInputError("checkpoints need --public-key FILE or --signing-key REF to be verified")
    if not session.ledger.exists():
        raise JobProblem(f"no ledger in {session.aiact_database} ({session.aiact_store.target})")
    verification = verify_ledger(session.ledger, keys.directory, keys.public)
    result = LedgerVerification(session.aiact_database, verification)
    tail = tail_problems(verification)
    if tail:
        result.access_refused = (f"this read was not recorded: the ledger's tail is {tail[0].kind}, and an entry "
                                 "appended after it would reuse the numbers of removed entries")
        return result
    try:
        result.access_seq = record_read(session, "sovtel audit verify")
    except LedgerTamperedError as exc:
        # The store still remembers writing an entry that is gone: a truncation found without checkpoints.
        verification.problems.append(Problem("truncated", exc.seq, str(exc)))
        verification.notes = [n for n in verification.notes if not n.startswith("no checkpoints given")]
        result.access_refused = "this read was not recorded: the ledger was truncated"
    return result


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
