"""GDPR erasure by data subject: the subject's pseudonyms under every key, deleted from every personal table
of every tier given, checked to be gone, and receipted in the ledger under a keyed hash of the subject.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from processors.keyring import KeyKind, KeyRing
from processors.pseudonymise import DEFAULT_ATTRIBUTE_KEYS, subject_pseudonyms
from retention.ledger import Ledger
from retention.tables import CatalogError, TableInfo, discover, quote_identifier
from sovtel.config import resolve_secret
from storage.backend import Store, StoreError

RECEIPT_CONTEXT = b"sovtel-erasure-receipt\x1f"
# Trace ids per DELETE statement: keeps each statement (and its parameters) a modest size.
TRACE_CHUNK = 2_000

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


class ErasureError(Exception):
    """Erasure cannot start: bad subject list, unusable key ring."""


@dataclass(frozen=True)
class Tier:
    """One place personal rows live: a store and a tier database in it."""

    store: Store
    database: str

    @property
    def store_id(self) -> str:
        """A short, stable name of the store for receipts (its address could itself be personal data)."""
        return "store-" + hashlib.sha256(self.store.target.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SubjectKeys:
    """The values a subject appears as: the identifier in clear and its pseudonym under each key id."""

    values: tuple[str, ...]
    key_ids: tuple[str, ...]


def read_subject_file(path: Path) -> list[str]:
    """Subject ids from a file: one per line; blank lines and lines starting with ``#`` are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ErasureError(f"subject file {path}: cannot read ({exc.strerror})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def subject_keys(subject: str, ring: KeyRing | None, resolve: Callable[[str], str] = resolve_secret,
                 digest_hex: int = 32) -> SubjectKeys:
    """The subject in clear plus its pseudonyms under every node key and node and pepper pair."""
    if not subject:
        raise ErasureError("a subject id must not be empty")
    pseudonyms = subject_pseudonyms(subject, ring, resolve, digest_hex) if ring is not None else {}
    values = tuple(dict.fromkeys([subject, *pseudonyms.values()]))
    return SubjectKeys(values, tuple(sorted(pseudonyms)))


def receipt_hmac(subject: str, key: bytes) -> str:
    """The receipt's stand-in for the subject: HMAC-SHA256 under a key the operator holds, domain-separated
    so it never equals a stored pseudonym. Whoever holds the key can later prove which subject it was."""
    return hmac.new(key, RECEIPT_CONTEXT + subject.encode(), hashlib.sha256).hexdigest()


@dataclass
class TableErasure:
    """Rows of one table that belonged to the subject: found, deleted, and still there afterwards."""

    store_id: str
    database: str
    table: str
    matched: int = 0
    deleted: int = 0
    remaining: int = 0
    error: str | None = None


@dataclass
class ErasureReport:
    """One subject's erasure over every tier."""

    subject_hmac: str
    receipt_key_id: str
    key_ids: tuple[str, ...]
    started: str
    finished: str = ""
    tables: list[TableErasure] = field(default_factory=list)
    ledger_seq: int | None = None

    @property
    def rows_deleted(self) -> int:
        """Rows deleted over all tables."""
        return sum(t.deleted for t in self.tables)

    @property
    def rows_remaining(self) -> int:
        """Rows of the subject still present after the erasure (should be 0)."""
        return sum(t.remaining for t in self.tables)

    @property
    def complete(self) -> bool:
        """Whether nothing of the subject remains and no table failed."""
        return self.rows_remaining == 0 and all(t.error is None for t in self.tables)

    def receipt(self) -> dict[str, Any]:
        """The ledger payload: no identifier in clear, only the keyed hash, tables, counts and times."""
        return {
            "subject_hmac": self.subject_hmac,
            "receipt_key_id": self.receipt_key_id,
            "key_ids": list(self.key_ids),
            "started": self.started,
            "finished": self.finished,
            "rows_deleted": self.rows_deleted,
            "rows_remaining": self.rows_remaining,
            "complete": self.complete,
            "tables": [
                {"store": t.store_id, "database": t.database, "table": t.table, "rows_deleted": t.deleted,
                 "rows_remaining": t.remaining, **({"error": t.error} if t.error else {})}
                for t in self.tables
            ],
        }

    def as_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {**self.receipt(), "ledger_seq": self.ledger_seq, "tables": [asdict(t) for t in self.tables]}


def _subject_condition(info: TableInfo) -> str | None:
    """SQL true for rows carrying one of ``{values:Array(String)}`` as an identifier or identifying attribute."""
    parts = [f"{quote_identifier(c)} IN {{values:Array(String)}}" for c in info.subject_columns]
    parts.extend(
        f"hasAny(arrayMap(k -> {quote_identifier(m)}[k], {{attr_keys:Array(String)}}), {{values:Array(String)}})"
        for m in info.string_map_columns
    )
    return " OR ".join(parts) if parts else None


def _tier_tables(tier: Tier) -> list[TableInfo]:
    return [t for t in discover(tier.store, tier.database)
            if t.subject_columns or t.string_map_columns or "trace_id" in t.columns]


def _count(store: Store, info: TableInfo, condition: str, params: dict[str, Any]) -> int:
    return int(store.query_rows(f"SELECT count() FROM {info.qualified} WHERE {condition}", params)[0][0])


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def erase_subject(tiers: Sequence[Tier], keys: SubjectKeys, subject_hmac: str, receipt_key_id: str,
                  progress: Progress = _no_progress) -> ErasureReport:
    """Delete every row of the subject from every tier and count what remains.

    Rows match when a subject column (user, session, tenant, conversation id) or an identifying
    attribute (``enduser.id``, ``user.id`` …) holds the subject's id or one of its pseudonyms, or
    when they belong to a trace in which such a row was found (child spans, logs and quality scores
    of the subject's requests). Deletes are mutations run synchronously (``mutations_sync = 2``),
    which rewrite the affected parts, rather than lightweight deletes that only mask rows.
    """
    report = ErasureReport(subject_hmac, receipt_key_id, keys.key_ids,
                           dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    params: dict[str, Any] = {"values": list(keys.values), "attr_keys": list(DEFAULT_ATTRIBUTE_KEYS)}
    for tier in tiers:
        try:
            tables = _tier_tables(tier)
        except (StoreError, CatalogError) as exc:
            report.tables.append(TableErasure(tier.store_id, tier.database, "*", error=str(exc)))
            continue
        traces: set[str] = set()
        for info in tables:
            cond = _subject_condition(info)
            if cond and "trace_id" in info.columns:
                rows = tier.store.query_rows(
                    f"SELECT DISTINCT trace_id FROM {info.qualified} WHERE ({cond}) AND trace_id != ''", params)
                traces.update(str(r[0]) for r in rows)
        trace_list = sorted(traces)
        for info in tables:
            progress(f"{tier.database}.{info.name}")
            result = TableErasure(tier.store_id, tier.database, info.name)
            conditions = [c for c in [_subject_condition(info)] if c]
            trace_chunks = list(_chunks(trace_list, TRACE_CHUNK)) if "trace_id" in info.columns else []
            try:
                for cond in conditions:
                    result.matched += _count(tier.store, info, cond, params)
                    tier.store.command(
                        f"ALTER TABLE {info.qualified} DELETE WHERE {cond} SETTINGS mutations_sync = 2", params)
                for chunk in trace_chunks:
                    tparams = {"traces": chunk}
                    tcond = "trace_id IN {traces:Array(String)}"
                    n = _count(tier.store, info, tcond, tparams)
                    if n:
                        result.matched += n
                        tier.store.command(
                            f"ALTER TABLE {info.qualified} DELETE WHERE {tcond} SETTINGS mutations_sync = 2", tparams)
                for cond in conditions:
                    result.remaining += _count(tier.store, info, cond, params)
                for chunk in trace_chunks:
                    result.remaining += _count(tier.store, info, "trace_id IN {traces:Array(String)}",
                                               {"traces": chunk})
            except StoreError as exc:
                result.error = str(exc)
            result.deleted = max(0, result.matched - result.remaining)
            if result.matched or result.remaining or result.error:
                report.tables.append(result)
    report.finished = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return report


def erase(
    subjects: Sequence[str],
    tiers: Sequence[Tier],
    ledger: Ledger,
    *,
    ring: KeyRing | None,
    receipt_key: bytes,
    receipt_key_id: str,
    resolve: Callable[[str], str] = resolve_secret,
    digest_hex: int = 32,
    progress: Progress = _no_progress,
) -> list[ErasureReport]:
    """Erase each subject from every tier and write one receipt per subject to the ledger."""
    if not subjects:
        raise ErasureError("no subject given")
    if len(receipt_key) < 16:
        raise ErasureError("the receipt key must be at least 16 bytes")
    reports: list[ErasureReport] = []
    for subject in subjects:
        keys = subject_keys(subject, ring, resolve, digest_hex)
        report = erase_subject(tiers, keys, receipt_hmac(subject, receipt_key), receipt_key_id, progress)
        report.ledger_seq = ledger.append("erasure", report.receipt()).seq
        reports.append(report)
    return reports


def default_receipt_key(ring: KeyRing, resolve: Callable[[str], str] = resolve_secret) -> tuple[bytes, str]:
    """The key receipts are keyed with when none is given: the active pepper (else node) key of the ring."""
    kind: KeyKind = "pepper" if ring.pepper is not None else "node"
    key_id = ring.active(kind)
    return ring.key(kind, key_id, resolve), f"{kind}:{key_id}"
