"""The retention jobs on an open session: enforce the policies now (apply), show every table against its
policy (status), and erase data subjects from every tier (GDPR erasure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from processors.keyring import KeyRing
from retention.checkpoints import sign_checkpoint, write_checkpoint
from retention.enforce import ApplyReport, TableStatus, apply, status
from retention.erasure import ErasureReport, default_receipt_key, erase, read_subject_file
from retention.ledger import LedgerEntry, format_timestamp
from retention.metrics import ComplianceMetrics
from retention.session import (
    CheckpointOptions,
    JobInputError,
    JobSession,
    PolicyOverrides,
    Progress,
    checkpoint_keys,
    no_progress,
)
from sovtel.config import resolve_secret


@dataclass(frozen=True)
class ApplyOptions:
    """How a retention run goes: policy overrides, checkpoints, aggregation first, where gauges go."""

    policies: PolicyOverrides = field(default_factory=PolicyOverrides)
    checkpoints: CheckpointOptions = field(default_factory=CheckpointOptions)
    aggregate: bool = True
    metrics_textfile: Path | None = None


@dataclass
class ApplyResult:
    """One report per store the run went through."""

    reports: list[ApplyReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every table is within its policy now."""
        return all(r.ok for r in self.reports)

    @property
    def rows_removed(self) -> int:
        """Rows removed over every store."""
        return sum(r.rows_removed for r in self.reports)


def apply_retention(session: JobSession, options: ApplyOptions = ApplyOptions(),
                    progress: Progress = no_progress) -> ApplyResult:
    """Set table TTLs, remove rows past their policy and record it in the ledger, then sign the ledger head.

    Raises JobInputError (bad policy), CheckpointError (unusable key), and the store's, catalog's,
    ledger's and PII guard's errors as they come.
    """
    policies = options.policies.apply_to(session.config.retention)
    keys = checkpoint_keys(options.checkpoints, session.config)

    def anchor(entry: LedgerEntry) -> bool:
        # Expired ledger entries go only once a signed checkpoint names the newest of them, so the
        # rest of the chain still verifies; without a key they stay.
        if keys.directory is None or keys.private is None:
            return False
        write_checkpoint(keys.directory, sign_checkpoint(session.aiact_database, entry.seq, entry.hash,
                                                         format_timestamp(entry.timestamp), key=keys.private))
        return True

    result = ApplyResult()
    for store, dbs in session.by_store():
        result.reports.append(apply(store, dbs, session.aiact_database_in(store), policies, ledger=session.ledger,
                                    aiact=session.aiact(), aggregate=options.aggregate and bool(dbs), anchor=anchor,
                                    progress=progress))
    if keys.directory is not None and keys.private is not None:
        session.ledger.checkpoint(keys.directory, keys.private)
    if options.metrics_textfile is not None:
        metrics = ComplianceMetrics(CollectorRegistry())
        for report in result.reports:
            metrics.publish_apply(report)
        metrics.write_textfile(options.metrics_textfile)
    return result


def retention_status(session: JobSession, policies: PolicyOverrides | None = None,
                     grace_hours: float = 0.0) -> list[TableStatus]:
    """The oldest row of every table of every store against its policy."""
    effective = (policies or PolicyOverrides()).apply_to(session.config.retention)
    rows: list[TableStatus] = []
    for store, dbs in session.by_store():
        rows.extend(status(store, dbs, session.aiact_database_in(store), effective, grace_hours))
    return rows


@dataclass(frozen=True)
class EraseOptions:
    """Whom to erase and how their stored ids are found; unset keys come from the configuration."""

    subjects: tuple[str, ...] = ()
    subject_file: Path | None = None
    keyring: Path | None = None
    no_pseudonyms: bool = False
    receipt_key: str | None = None
    digest_hex: int | None = None


def read_subjects(options: EraseOptions) -> list[str]:
    """The subject ids named, then those of the subject file; ErasureError if the file is unusable."""
    ids = list(options.subjects)
    if options.subject_file is not None:
        ids.extend(read_subject_file(options.subject_file))
    return ids


def erase_subjects(session: JobSession, options: EraseOptions, progress: Progress = no_progress
                   ) -> list[ErasureReport]:
    """Erase the subjects from every personal table of every tier, one ledger receipt per subject.

    Raises JobInputError for missing input, ErasureError, KeyRingError, SecretError or ValueError
    for unusable subjects or keys, and the store's and ledger's errors as they come.
    """
    ids = read_subjects(options)
    if not ids:
        raise JobInputError("give --subject ID or --subject-file FILE")
    ring_path = options.keyring or session.config.erasure.keyring
    if ring_path is None and not options.no_pseudonyms:
        raise JobInputError("give --keyring FILE (stored ids are pseudonyms), or --no-pseudonyms if the "
                            "stores hold identifiers in clear")
    ring = KeyRing.load(ring_path) if ring_path is not None else None
    key_ref = options.receipt_key or session.config.erasure.receipt_key
    if key_ref is not None:
        key, key_id = resolve_secret(key_ref).encode(), "receipt-key"
    elif ring is not None:
        key, key_id = default_receipt_key(ring)
    else:
        raise JobInputError("give --receipt-key env:NAME|file:PATH (receipts are keyed hashes)")
    return erase(ids, session.tiers, session.ledger, ring=ring, receipt_key=key, receipt_key_id=key_id,
                 digest_hex=options.digest_hex or session.config.erasure.digest_hex, progress=progress)
