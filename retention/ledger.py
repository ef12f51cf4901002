"""The hash-chained compliance ledger in the AI-Act store: append-only entries, each hash = SHA-256 of
the previous hash and the entry's canonical JSON, verified against signed checkpoints kept outside the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from retention.checkpoints import Checkpoint, canonical_json, read_checkpoints, sign_checkpoint, write_checkpoint
from retention.guard import PiiGuard
from retention.tables import quote_identifier
from storage.backend import PermanentStoreError, Store, StoreError

log = logging.getLogger("sovtel.retention.ledger")

GENESIS_HASH = "0" * 64
LEDGER_TABLE = "ledger"
DEFAULT_ACTOR = "sovtel"
# Environment variables read by record_query_access (called from `sovtel query`).
AIACT_DATABASE_ENV = "SOVTEL_AIACT_DATABASE"
ACTOR_ENV = "SOVTEL_ACTOR"
ACCESS_TAG = "sovtel-access"
_ACCESS_TAG_RE = re.compile(ACCESS_TAG + r":([0-9a-f]{16})")

# Reorder detection tries the sequence numbers this close to where an entry is found.
_REORDER_WINDOW = 16

ARROW_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.uint64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("prev_hash", pa.string(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),
    ]
)


class LedgerError(Exception):
    """The ledger cannot be appended to or read (missing table, lost every race for the next seq)."""


class LedgerTamperedError(LedgerError):
    """The ledger's newest entries were removed or rewritten, so nothing may be appended after them.

    Appending would reuse the sequence numbers of removed entries and build new history on a tail
    that is not the one written; the ledger must be restored first. ``seq`` is the first entry affected.
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


# Problems of these kinds mean the head of the chain is not the head that was written (and signed).
TAIL_PROBLEMS = frozenset({"truncated", "rewritten"})


def format_timestamp(ts: dt.datetime) -> str:
    """``2026-11-23T07:37:20.935Z``: millisecond precision, as the ledger column stores it."""
    utc = ts.astimezone(dt.UTC) if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_utc_ms(ts: dt.datetime) -> dt.datetime:
    """``ts`` in UTC truncated to milliseconds (what a DateTime64(3) column keeps)."""
    utc = ts.astimezone(dt.UTC) if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def chain_hash(prev_hash: str, seq: int, timestamp: dt.datetime, *, action: str, actor: str, payload: str) -> str:
    """SHA-256 over the previous hash followed by the entry's canonical JSON."""
    body = canonical_json(
        {"seq": seq, "timestamp": format_timestamp(timestamp), "action": action, "actor": actor, "payload": payload}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row; ``payload`` is canonical JSON text (what the hash covers)."""

    seq: int
    timestamp: dt.datetime
    action: str
    actor: str
    payload: str
    prev_hash: str
    hash: str

    @property
    def data(self) -> dict[str, Any]:
        """The payload parsed (empty if it is not a JSON object)."""
        try:
            value = json.loads(self.payload)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def expected_hash(self, seq: int | None = None) -> str:
        """The hash this entry's content gives (optionally as if written at another ``seq``)."""
        return chain_hash(self.prev_hash, self.seq if seq is None else seq, self.timestamp, action=self.action,
                          actor=self.actor, payload=self.payload)

    def as_json(self) -> dict[str, Any]:
        """The entry as plain JSON data (for exports)."""
        return {
            "seq": self.seq,
            "timestamp": format_timestamp(self.timestamp),
            "action": self.action,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _entry(row: Sequence[Any]) -> LedgerEntry:
    seq, ts, action, actor, payload, prev_hash, hash_ = row
    return LedgerEntry(int(seq), to_utc_ms(ts), str(action), str(actor), str(payload), str(prev_hash), str(hash_))


_COLUMNS = "seq, timestamp, action, actor, payload, prev_hash, hash"


class Ledger:
    """Append and read the ledger of one AI-Act database.

    Appends are compare-and-swap: the row for ``seq`` is inserted with the deduplication token
    ``ledger-<seq>`` (migration 0400 gives the table a deduplication window), so of two writers
    racing for one seq ClickHouse keeps the first; the loser sees a different hash stored under
    its seq and retries on the new head. Every payload passes the PII guard before it is written.
    """

    def __init__(
        self,
        store: Store,
        database: str = "aiact",
        *,
        actor: str = DEFAULT_ACTOR,
        guard: PiiGuard | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        attempts: int = 8,
    ) -> None:
        quote_identifier(database)
        self.store = store
        self.database = database
        self.actor = actor
        self.guard = guard if guard is not None else PiiGuard(ner="off")
        self.clock = clock
        self.attempts = attempts

    @property
    def table(self) -> str:
        """``db.ledger``."""
        return f"{self.database}.{LEDGER_TABLE}"

    def exists(self) -> bool:
        """Whether the ledger table exists in the store."""
        rows = self.store.query_rows(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": LEDGER_TABLE},
        )
        return bool(rows and rows[0][0])

    def head(self) -> LedgerEntry | None:
        """The entry with the highest seq, or None for an empty ledger."""
        rows = self.store.query_rows(f"SELECT {_COLUMNS} FROM {self.table} ORDER BY seq DESC, hash LIMIT 1")
        return _entry(rows[0]) if rows else None

    def count(self) -> int:
        """Number of stored entries."""
        return int(self.store.query_rows(f"SELECT count() FROM {self.table}")[0][0])

    def at(self, seq: int) -> list[LedgerEntry]:
        """The entries stored under ``seq`` (more than one only if the chain forked)."""
        rows = self.store.query_rows(f"SELECT {_COLUMNS} FROM {self.table} WHERE seq = {{s:UInt64}}", {"s": seq})
        return [_entry(r) for r in rows]

    def entries(self, page: int = 20_000) -> Iterator[LedgerEntry]:
        """Every entry in seq order, read in pages."""
        last = -1
        while True:
            rows = self.store.query_rows(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE seq > {{last:Int64}} ORDER BY seq, hash LIMIT {int(page)}",
                {"last": last},
            )
            # A page boundary inside a group of duplicates would skip some; read such seqs whole.
            if len(rows) == page:
                boundary = int(rows[-1][0])
                rows = [r for r in rows if int(r[0]) != boundary]
                rows.extend(tuple(r) for r in self.store.query_rows(
                    f"SELECT {_COLUMNS} FROM {self.table} WHERE seq = {{s:UInt64}} ORDER BY hash", {"s": boundary}
                ))
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            last = int(rows[-1][0])

    def append(self, action: str, payload: Mapping[str, Any], actor: str | None = None) -> LedgerEntry:
        """Append one entry after the PII guard accepted it; returns the entry as stored."""
        who = actor or self.actor
        text = canonical_json(dict(payload))
        self.guard.check(self.table, [{"action": action, "actor": who, "payload": text}])
        for _ in range(self.attempts):
            head = self.head()
            seq = head.seq + 1 if head else 1
            prev = head.hash if head else GENESIS_HASH
            ts = to_utc_ms(self.clock())
            if head is not None and ts < head.timestamp:
                ts = head.timestamp  # a clock step back must not make the ledger's time run backwards
            digest = chain_hash(prev, seq, ts, action=action, actor=who, payload=text)
            row = pa.table(
                [[seq], [ts], [action], [who], [text], [prev], [digest]], schema=ARROW_SCHEMA
            )
            self.store.insert_arrow(self.table, row, dedup_token=f"ledger-{seq}")
            stored = self.at(seq)
            if any(e.hash == digest for e in stored):
                return LedgerEntry(seq, ts, action, who, text, prev, digest)
            if not stored:
                # ClickHouse skipped the insert as a repeat of one it already holds a token for, yet no
                # entry is stored under that seq: it was written once and has been deleted since.
                raise LedgerTamperedError(
                    f"{self.table} was truncated: entry {seq} was written before and has been removed, so "
                    "nothing can be appended until the ledger is restored (sovtel audit verify reports the damage)",
                    seq,
                )
            log.info("ledger %s: another writer took seq %d; retrying on the new head", self.table, seq)
        raise LedgerError(f"could not append to {self.table} after {self.attempts} attempts (concurrent writers?)")

    def checkpoint(self, directory: Any, key: Ed25519PrivateKey) -> Checkpoint | None:
        """Sign the current head and write it to ``directory`` (outside the store); None if empty."""
        head = self.head()
        if head is None:
            return None
        cp = sign_checkpoint(self.database, head.seq, head.hash, format_timestamp(head.timestamp), key=key)
        write_checkpoint(directory, cp)
        return cp


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the ledger: ``kind`` is modified, missing, reordered, duplicate, broken,
    truncated, rewritten or checkpoint."""

    kind: str
    seq: int | None
    message: str


@dataclass
class Verification:
    """The result of verifying a ledger: entries seen, head, checkpoints used, and every problem."""

    entries: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """Plain data for reports and the ledger."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_seq": self.first_seq,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints": self.checkpoints,
            "problems": [{"kind": p.kind, "seq": p.seq, "message": p.message} for p in self.problems],
            "notes": list(self.notes),
        }


def verify_entries(
    entries: Iterable[LedgerEntry],
    checkpoints: Sequence[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
) -> Verification:
    """Check the chain entry by entry and against the (signature-checked) checkpoints.

    Detects a modified entry (its hash no longer matches its content), deleted entries (a gap in
    seq or a broken link), reordering (an entry whose hash matches another position), forks
    (two entries with one seq), truncation (a checkpoint beyond the last entry) and a consistently
    rewritten chain (a checkpoint whose hash differs from the entry at its seq). Entries before
    the first one stored are accepted as expired only when a checkpoint anchors the first one.
    """
    result = Verification()
    valid: list[Checkpoint] = []
    for cp in checkpoints:
        if public_key is None or not cp.verify(public_key):
            result.problems.append(Problem("checkpoint", cp.seq, f"checkpoint at seq {cp.seq}: invalid signature"))
        else:
            valid.append(cp)
    by_seq: dict[int, Checkpoint] = {cp.seq: cp for cp in valid}
    result.checkpoints = len(valid)
    seen_at: dict[int, str] = {}
    prev: LedgerEntry | None = None
    missing: list[int] = []
    for entry in entries:
        result.entries += 1
        if prev is None:
            result.first_seq = entry.seq
            if entry.seq != 1 or entry.prev_hash != GENESIS_HASH:
                anchor = by_seq.get(entry.seq - 1)
                if anchor is not None and anchor.hash == entry.prev_hash:
                    result.notes.append(
                        f"entries before seq {entry.seq} are gone (expired); the chain is anchored by the "
                        f"checkpoint at seq {anchor.seq}"
                    )
                else:
                    result.problems.append(Problem(
                        "missing", entry.seq,
                        f"the ledger starts at seq {entry.seq} and no checkpoint anchors it: "
                        f"entries 1..{entry.seq - 1} were removed",
                    ))
                    missing.extend(range(max(1, entry.seq - _REORDER_WINDOW), entry.seq))
        elif entry.seq == prev.seq:
            result.problems.append(Problem("duplicate", entry.seq, f"two entries share seq {entry.seq} (forked chain)"))
        elif entry.seq > prev.seq + 1:
            gap = list(range(prev.seq + 1, entry.seq))
            missing.extend(gap[:_REORDER_WINDOW])
            result.problems.append(Problem(
                "missing", prev.seq + 1,
                f"entries {gap[0]}..{gap[-1]} are missing (deleted)" if len(gap) > 1 else f"entry {gap[0]} is missing "
                "(deleted)",
            ))
        recomputed = entry.expected_hash()
        if entry.hash != recomputed:
            candidates = [s for s in range(entry.seq - _REORDER_WINDOW, entry.seq + _REORDER_WINDOW + 1)
                          if s != entry.seq and s > 0] + missing
            moved = next((s for s in candidates if entry.expected_hash(s) == entry.hash), None)
            if moved is not None:
                result.problems.append(Problem(
                    "reordered", entry.seq, f"entry stored at seq {entry.seq} was written as seq {moved} (reordered)"
                ))
            else:
                result.problems.append(Problem(
                    "modified", entry.seq, f"entry {entry.seq} was modified: its content no longer matches its hash"
                ))
        elif prev is not None and entry.seq != prev.seq and entry.prev_hash != prev.hash:
            result.problems.append(Problem(
                "broken", entry.seq, f"entry {entry.seq} does not link to entry {prev.seq} (chain broken)"
            ))
        if entry.seq in by_seq:
            seen_at[entry.seq] = entry.hash
        prev = entry
    if prev is not None:
        result.head_seq, result.head_hash = prev.seq, prev.hash
    for cp in valid:
        if result.head_seq is None or cp.seq > result.head_seq:
            result.problems.append(Problem(
                "truncated", cp.seq,
                f"the checkpoint signed at {cp.created} covers seq {cp.seq}, but the ledger ends at "
                f"{result.head_seq if result.head_seq is not None else 'nothing (empty)'}: entries were cut off",
            ))
        elif cp.seq in seen_at and seen_at[cp.seq] != cp.hash:
            result.problems.append(Problem(
                "rewritten", cp.seq,
                f"entry {cp.seq} differs from the checkpoint signed at {cp.created}: the history was rewritten",
            ))
        elif cp.seq not in seen_at and (result.first_seq is None or cp.seq >= result.first_seq):
            result.problems.append(Problem("missing", cp.seq, f"entry {cp.seq} named by a checkpoint is missing"))
    return result


def tail_problems(verification: Verification) -> list[Problem]:
    """The problems that mean the chain's newest entries are not the ones written (truncated, rewritten)."""
    return [p for p in verification.problems if p.kind in TAIL_PROBLEMS]


def refuse_tampered_tail(verification: Verification, table: str, what: str) -> None:
    """Raise LedgerTamperedError when ``verification`` found the newest entries cut off or rewritten.

    ``what`` names the refused act ("this read", "the export"): it cannot be recorded on such a tail.
    """
    tail = tail_problems(verification)
    if tail:
        raise LedgerTamperedError(
            f"{table} was tampered with ({tail[0].kind}: {tail[0].message}); {what} cannot be recorded after a "
            "tampered tail and was refused (sovtel audit verify lists every problem)",
            tail[0].seq,
        )


def verify_ledger(
    ledger: Ledger,
    checkpoint_dir: Any = None,
    public_key: Ed25519PublicKey | None = None,
) -> Verification:
    """Verify a stored ledger, with the checkpoints in ``checkpoint_dir`` when given."""
    checkpoints: list[Checkpoint] = []
    file_problems: list[str] = []
    if checkpoint_dir is not None:
        checkpoints, file_problems = read_checkpoints(checkpoint_dir, ledger.database)
    result = verify_entries(ledger.entries(), checkpoints, public_key)
    result.problems.extend(Problem("checkpoint", None, p) for p in file_problems)
    if checkpoint_dir is None:
        result.notes.append("no checkpoints given: truncation of the newest entries cannot be detected")
    return result


def record_query_access(store: Store, sql: str, source: str = "sovtel query") -> str:
    """Record a read in the store's ledger before it runs; returns ``sql`` tagged with the entry's access id.

    The tag (a leading SQL comment) lets the audit match server query logs to ledger entries. The
    SQL itself is not stored, only its SHA-256 (it may name a subject). A store without an AI-Act
    ledger cannot record anything: the query runs untagged and a warning is logged. Any other
    failure raises ``PermanentStoreError``, so the read is refused rather than left unrecorded.
    """
    database = os.environ.get(AIACT_DATABASE_ENV, "aiact")
    try:
        ledger = Ledger(store, database, actor=os.environ.get(ACTOR_ENV, DEFAULT_ACTOR))
        if not ledger.exists():
            log.warning("no ledger %s.%s in %s: this read is not recorded", database, LEDGER_TABLE, store.target)
            return sql
        access_id = secrets.token_hex(8)
        ledger.append("access", {
            "source": source,
            "access_id": access_id,
            "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
            "sql_chars": len(sql),
        })
    except (StoreError, LedgerError, ValueError) as exc:
        raise PermanentStoreError(f"the read could not be recorded in the ledger, so it was not run: {exc}") from exc
    return f"/* {ACCESS_TAG}:{access_id} */ {sql}"


def access_ids(text: str) -> list[str]:
    """The access ids tagged into a query text."""
    return _ACCESS_TAG_RE.findall(text)
