"""The durable per-sink queue: a write-ahead buffer of processed batches in SQLite (WAL, synchronous=FULL).

A batch is stored as Arrow IPC bytes before the receiver acknowledges it, and deleted only after
the sink accepted it. Concurrent puts share one commit (group commit): the first waiting thread
becomes the leader, writes every batch queued so far in one transaction and fsyncs once, and each
put returns only after the commit holding its batch. The worker *claims* a group of queued batches
(an id range, so no stored row is rewritten) before exporting it, and commits with the claim the
group's dedup token, hashed from the stored bytes. After a crash the same group — the same rows in
the same order, with the same token — is replayed first, and ClickHouse skips what it had already
stored. The queue holds processed data only (ADR 0001).

Its size is bounded twice, and beyond either bound receivers get a retryable refusal: by a byte
budget, and by the free space of its filesystem (a watermark), checked before each put. Delivery
must keep working on a full disk, because SQLite needs room to delete: a pre-allocated reserve file
is released when a claim or a delete finds the disk full, and a delete that still finds no room
skips zeroing the freed pages (``secure_delete=FAST``), which would otherwise need as much room as
the data deleted. The reserve is allocated again once space is back.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa

from sovtel.queue.buffer import (
    DEFAULT_QUEUE_BYTES,
    DEFAULT_RESERVE_BYTES,
    BatchBuffer,
    MemoryBuffer,
    QueueConfig,
    Taken,
)
from sovtel.queue.dedup import DEDUP_TOKEN, stored_group_token
from sovtel.queue.disk import QueueRefusal, Reserve, default_min_free, disk_free, is_disk_error
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.queue")

# How many queued batches one group may combine; a group is also bounded by the sink's batch_rows.
_MAX_GROUP_BATCHES = 10_000

# Room a put needs beyond its payload: the b-tree cell and index pages it touches.
_PUT_OVERHEAD = 2 * 4096

# Pages the write-ahead log collects before a checkpoint copies them into the file (SQLite's default
# is 1000). Until then the file still has to grow by what the log holds, so the watermark keeps
# twice that much room on top (``_wal_headroom``); a small log keeps that headroom small.
_WAL_CHECKPOINT_PAGES = 256

# Two releases of claims. Before range claims, a claim set ``batches.group_id`` on each claimed row,
# which rewrote every payload (and, on a full disk, needed as much room as the group). A range
# claim is one ``claims`` row: the group is ``batches.id BETWEEN group_id AND last_id``. Claims
# with ``last_id`` NULL are such older claims, and ``claims`` itself came after ``batches``: a
# group claimed by a release without it has no token, and the sink then hashes the rows, as that
# release did, so its replay keeps the token it was sent with.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    group_id INTEGER,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_group ON batches (group_id, id);
CREATE TABLE IF NOT EXISTS claims (
    group_id INTEGER PRIMARY KEY,
    token TEXT NOT NULL,
    last_id INTEGER
);
"""


class QueueInUseError(RuntimeError):
    """Another process holds this queue file."""


def queue_file(directory: Path, sink: str) -> Path:
    """The queue file of sink ``sink`` (``clickhouse/local`` → ``clickhouse__local.sqlite``) in ``directory``."""
    return directory / (re.sub(r"[^A-Za-z0-9_.-]", "__", sink) + ".sqlite")


def encode(batch: Batch) -> memoryview:
    """The batch's table as Arrow IPC stream bytes (a view of Arrow's buffer: SQLite stores it without a copy)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.table.schema) as writer:
        writer.write_table(batch.table)
    return memoryview(sink.getvalue())


def decode(signal: str, payload: bytes) -> Batch:
    """A batch from its stored signal name and Arrow IPC bytes (zero-copy: its buffers are slices of ``payload``)."""
    with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
        table = reader.read_all()
    return Batch(Signal(signal), table)


@dataclass(eq=False)
class _Put:
    """One batch waiting for a group commit; the leader sets ``error`` (or not) and then ``done``."""

    signal: str
    rows: int
    payload: bytes | memoryview
    done: bool = False
    error: Exception | None = None


@dataclass(frozen=True)
class _Group:
    """A claimed group: its first id, its last id (None: claimed by ``group_id``, an older release), rows, bytes."""

    first: int
    last: int | None
    rows: int
    nbytes: int


class DurableBuffer:
    """A ``BatchBuffer`` on disk; one file per sink, one process per file.

    Thread-safe: one SQLite connection behind one lock; ``put`` is called on receiver threads,
    ``take`` and ``ack`` on one worker thread. ``put`` returns once the transaction holding its
    batch is committed with synchronous=FULL (fsynced), so an acknowledged batch survives SIGKILL
    and power loss of the node's page cache; concurrent puts share that commit. The byte budget
    counts stored payload bytes; the watermark counts free bytes of the filesystem plus free pages
    inside the file (which later puts reuse), minus the reserve while it is released.
    """

    durable = True

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_QUEUE_BYTES,
        min_free_bytes: int | None = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self.min_free_bytes = default_min_free(path.parent) if min_free_bytes is None else min_free_bytes
        self._free_space = free_space
        self._lock_file: IO[str] | None = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the buffer's life
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise QueueInUseError(f"queue {path} is in use by another process") from None
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # Before any table exists, so that a new file can hand free pages back to the filesystem
        # (to allocate the reserve again after a full disk); a no-op on an existing file.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        # Deleted payloads are zeroed, so exported data does not linger in the file; a delete on a
        # full disk falls back to FAST (see _delete_group).
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        if "last_id" not in {r[1] for r in self._db.execute("PRAGMA table_info(claims)")}:
            self._db.execute("ALTER TABLE claims ADD COLUMN last_id INTEGER")
        # Forget claims whose rows are gone (acknowledged by a release that kept the claim).
        self._db.execute(
            "DELETE FROM claims WHERE CASE WHEN last_id IS NULL"
            " THEN NOT EXISTS (SELECT 1 FROM batches b WHERE b.group_id = claims.group_id)"
            " ELSE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id BETWEEN claims.group_id AND claims.last_id) END"
        )
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._wal_headroom = 2 * _WAL_CHECKPOINT_PAGES * self._page_size
        # A log that one large commit grew is cut back after its checkpoint, returning the space.
        self._db.execute(f"PRAGMA journal_size_limit={self._wal_headroom}")
        self._auto_vacuum = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2
        self._lock = threading.Lock()
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0) FROM batches"
        ).fetchone()
        self._batches, self._rows, self._bytes = (int(v) for v in row)
        # Claimed groups a previous run did not finish are offered (again) first; they count as ready.
        self._resume: list[int] = [
            int(g) for (g,) in self._db.execute(
                "SELECT group_id FROM (SELECT group_id FROM batches WHERE group_id IS NOT NULL"
                " UNION SELECT group_id FROM claims WHERE last_id IS NOT NULL) ORDER BY group_id"
            )
        ]
        # Batches with ids up to here belong to range claims; later ones are unclaimed.
        self._claimed_upto = int(self._db.execute("SELECT coalesce(max(last_id), 0) FROM claims").fetchone()[0])
        self._in_flight = 0
        self._free_pages = 0
        self._refresh_free_pages()
        self._reserve = Reserve(Path(f"{path}.reserve"), reserve_bytes)
        self._reserve_short = False
        self._allocate_reserve()
        self._short = False
        # Group commit: puts wait in _waiting; one of them at a time (the leader) commits them all.
        self._commit = threading.Condition(threading.Lock())
        self._waiting: list[_Put] = []
        self._leading = False
        self.commits = 0
        if self._rows:
            log.info("queue %s: resuming %d rows in %d batches (%d bytes)", path, self._rows, self._batches,
                     self._bytes)

    @property
    def pending_rows(self) -> int:
        """Rows on disk not yet acknowledged."""
        with self._lock:
            return self._rows

    @property
    def ready_rows(self) -> int:
        """Rows on disk not currently being exported."""
        with self._lock:
            return self._rows - self._in_flight

    @property
    def pending_bytes(self) -> int:
        """Payload bytes on disk (what the budget counts)."""
        with self._lock:
            return self._bytes

    @property
    def reserve_held(self) -> bool:
        """Whether the reserve file holds its space now (False after a full disk released it)."""
        return self._reserve.held

    def available_bytes(self) -> int:
        """Room for new batches: free bytes of the filesystem plus free pages of the file, less a released reserve."""
        try:
            free = self._free_space(self.path.parent)
        except OSError:
            return 0  # a filesystem we cannot even measure takes nothing more (refused, retryable)
        free += self._free_pages * self._page_size
        if not self._reserve.held:
            # Space the reserve gave back is for deletes and the reserve itself, not for new batches.
            free -= self._reserve.size
        return free

    def _has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes keep the free space above the watermark; logs each change of state."""
        available = self.available_bytes()
        room = available - size - _PUT_OVERHEAD - self._wal_headroom >= self.min_free_bytes
        if room == self._short:
            self._short = not room
            if room:
                log.info("queue %s: free space is above the watermark again; accepting batches", self.path)
            else:
                log.warning("queue %s: %d bytes free for the queue, less than the watermark (%d bytes) plus room "
                            "for the write-ahead log (%d bytes); refusing new batches (retryable) until space is "
                            "freed", self.path, available, self.min_free_bytes, self._wal_headroom)
        return room

    def fits(self, batch: Batch | None, rows: int = 0) -> bool:
        """Whether the batch (its in-memory size, about its IPC size) fits under the byte budget and the watermark."""
        size = int(batch.table.nbytes) if batch is not None else 0
        with self._lock:
            in_budget = self._bytes + size <= self.max_bytes if size else self._bytes < self.max_bytes
        return in_budget and self._has_room(size)

    def put(self, batch: Batch) -> None:
        """Write the batch; returns once it is committed and fsynced (sharing the commit with concurrent puts).

        Raises ``QueueRefusal`` (a ``Backpressure``) when the free space is below the watermark or the
        disk refuses the write; nothing of the batch is then stored.
        """
        item = _Put(batch.signal.value, batch.rows, encode(batch))
        with self._commit:
            self._waiting.append(item)
            while not item.done:
                if self._leading:
                    self._commit.wait()
                    continue
                # Lead: commit every put waiting now (including this one) in one transaction.
                self._leading = True
                group, self._waiting = self._waiting, []
                self._commit.release()
                try:
                    self._commit_puts(group)
                finally:
                    self._commit.acquire()
                    self._leading = False
                    self._commit.notify_all()
        if item.error is not None:
            raise item.error

    def _commit_puts(self, group: list[_Put]) -> None:
        """Insert the group's batches that keep the watermark in one transaction; mark each done.

        A put is acknowledged only by a committed transaction: anything that stops the leader before
        the commit (an error, an interrupt) leaves its batches with an error, never silently done.
        """
        committed = False
        try:
            with self._lock:
                self._check_open()
                room = self.available_bytes() - self._wal_headroom - self.min_free_bytes
                accepted: list[_Put] = []
                for item in group:
                    need = len(item.payload) + _PUT_OVERHEAD
                    if need > room:
                        item.error = QueueRefusal(
                            f"queue {self.path.name}: disk free space is below the watermark "
                            f"({self.min_free_bytes} bytes); retry later", "queue_disk_watermark")
                        continue
                    room -= need
                    accepted.append(item)
                if not accepted:
                    return
                now = time.time()
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany(
                        "INSERT INTO batches (signal, rows, bytes, enqueued_at, payload) VALUES (?, ?, ?, ?, ?)",
                        [(i.signal, i.rows, len(i.payload), now, i.payload) for i in accepted],
                    )
                    self._db.execute("COMMIT")
                except (sqlite3.Error, OSError) as exc:
                    self._rollback()
                    refusal = self._refusal(exc)
                    for item in accepted:
                        item.error = refusal
                    return
                committed = True
                self.commits += 1
                self._batches += len(accepted)
                self._rows += sum(i.rows for i in accepted)
                self._bytes += sum(len(i.payload) for i in accepted)
                self._refresh_free_pages()
        except Exception as exc:  # e.g. a closed queue: every waiting put learns it, none hangs
            for item in group:
                if item.error is None:
                    item.error = exc
        finally:
            for item in group:
                if item.error is None and not committed:
                    item.error = QueueRefusal(f"queue {self.path.name}: the write was interrupted; retry later",
                                              "queue_write_error")
                item.done = True

    def _refusal(self, exc: BaseException) -> QueueRefusal:
        """The retryable refusal a failed put answers with; the batches of its commit were not stored."""
        if is_disk_error(exc):
            log.warning("queue %s: the disk refused a write (%s); answering retryable", self.path, exc)
            return QueueRefusal(f"queue {self.path.name}: the disk is full or failing ({exc}); retry later",
                                "queue_disk_full")
        log.error("queue %s: a write failed; answering retryable", self.path, exc_info=exc)
        return QueueRefusal(f"queue {self.path.name}: write failed ({type(exc).__name__}); retry later",
                            "queue_write_error")

    def take(self, max_rows: int) -> Taken | None:
        """The next group: an unfinished claimed group first, else the oldest unclaimed batches of one signal."""
        if self._resume:
            return self._take_claimed()
        with self._lock:
            self._check_open()
            head = self._db.execute(
                "SELECT id, signal, rows FROM batches WHERE id > ? AND group_id IS NULL ORDER BY id LIMIT ?",
                (self._claimed_upto, _MAX_GROUP_BATCHES),
            ).fetchall()
            if not head:
                return None
            signal = head[0][1]
            ids: list[int] = []
            total = 0
            for bid, sig, n in head:
                if sig != signal or (ids and total + n > max_rows):
                    break
                ids.append(int(bid))
                total += int(n)
            payloads = [p for (p,) in self._db.execute(
                "SELECT payload FROM batches WHERE id BETWEEN ? AND ? ORDER BY id", (ids[0], ids[-1]),
            )]
        # Hashing runs outside the lock so receivers can put meanwhile; only this worker thread
        # claims, and puts only add later ids, so the rows read are still the rows claimed below.
        parts = [decode(signal, p) for p in payloads]
        token = stored_group_token(Signal(signal), payloads, [p.table for p in parts])
        group = _Group(ids[0], ids[-1], total, sum(len(p) for p in payloads))
        with self._lock:
            self._check_open()
            # The claim and its token are committed (fsynced) before the export, so a replay sends
            # the same group under the same token. One small row: no stored payload is rewritten.
            self._write(lambda: self._db.execute(
                "INSERT INTO claims (group_id, token, last_id) VALUES (?, ?, ?)", (ids[0], token, ids[-1])))
            self._claimed_upto = ids[-1]
            self._in_flight += total
        return _taken(parts, group, token)

    def _take_claimed(self) -> Taken | None:
        """The oldest group a previous run claimed and did not finish, with the token it was claimed with."""
        with self._lock:
            self._check_open()
            first = self._resume[0]
            found = self._db.execute("SELECT token, last_id FROM claims WHERE group_id = ?", (first,)).fetchone()
            last = None if found is None or found[1] is None else int(found[1])
            if last is None:
                rows = self._db.execute(
                    "SELECT signal, rows, payload FROM batches WHERE group_id = ? ORDER BY id", (first,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT signal, rows, payload FROM batches WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
                ).fetchall()
            if not rows:
                self._resume.pop(0)
                return None
            n_rows = sum(int(r[1]) for r in rows)
            self._in_flight += n_rows
        parts = [decode(sig, payload) for sig, _, payload in rows]
        group = _Group(first, last, n_rows, sum(len(r[2]) for r in rows))
        return _taken(parts, group, str(found[0]) if found else None)

    def ack(self, taken: Taken) -> None:
        """Delete the group and its claim; it was exported (or rejected for good). Works on a full disk."""
        group: _Group = taken.handle
        with self._lock:
            self._check_open()
            removed = self._delete_group(group)
            self._batches -= len(removed)
            self._rows -= sum(int(r[0]) for r in removed)
            self._bytes -= sum(int(r[1]) for r in removed)
            self._in_flight -= group.rows
            if self._resume and self._resume[0] == group.first:
                self._resume.pop(0)
            self._refresh_free_pages()
            self._allocate_reserve()

    def _delete_group(self, group: _Group) -> list[tuple[int, int]]:
        """Delete a group's rows and claim in one transaction, making room on a full disk if need be."""
        # Zeroing the freed pages writes as much as the group holds; skip it when the disk could not take that.
        secure = self._free_or_zero() >= 2 * group.nbytes + self._reserve.size
        while True:
            try:
                if not secure:
                    self._db.execute("PRAGMA secure_delete=FAST")
                self._db.execute("BEGIN IMMEDIATE")
                if group.last is None:
                    removed = self._db.execute(
                        "DELETE FROM batches WHERE group_id = ? RETURNING rows, bytes", (group.first,)).fetchall()
                else:
                    removed = self._db.execute(
                        "DELETE FROM batches WHERE id BETWEEN ? AND ? RETURNING rows, bytes",
                        (group.first, group.last)).fetchall()
                self._db.execute("DELETE FROM claims WHERE group_id = ?", (group.first,))
                self._db.execute("COMMIT")
                return [(int(r[0]), int(r[1])) for r in removed]
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                if not is_disk_error(exc):
                    raise
                if self._reserve.held and self._reserve.size:
                    self._release_reserve(exc)
                elif secure:
                    log.warning("queue %s: deleting exported batches without zeroing their pages (disk full); "
                                "the pages are overwritten when reused", self.path)
                    secure = False
                else:
                    raise
            finally:
                if not secure:
                    self._db.execute("PRAGMA secure_delete=ON")

    def _write(self, statement: Callable[[], object]) -> None:
        """Run one autocommitted write; on a full disk, release the reserve and try once more."""
        try:
            statement()
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            if not (is_disk_error(exc) and self._reserve.held and self._reserve.size):
                raise
            self._release_reserve(exc)
            statement()

    def _rollback(self) -> None:
        """Roll back an open transaction, if any (SQLite may already have rolled it back)."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("queue %s: rollback failed", self.path)

    def _refresh_free_pages(self) -> None:
        try:
            self._free_pages = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        except sqlite3.Error:
            self._free_pages = 0

    def _free_or_zero(self) -> int:
        try:
            return self._free_space(self.path.parent)
        except OSError:
            return 0

    def _release_reserve(self, cause: BaseException) -> None:
        """Give the reserve's space back to the filesystem, so SQLite can write what a delete or claim needs."""
        try:
            self._reserve.release()
        except OSError:
            log.exception("queue %s: releasing the reserve failed", self.path)
        self._reserve_short = True
        log.warning("queue %s: the disk is full (%s); released the %d-byte reserve so delivered batches can "
                    "be deleted", self.path, cause, self._reserve.size)

    def _allocate_reserve(self) -> None:
        """Allocate the reserve file (again) if the disk has room for it and the watermark; else try later.

        Free pages inside the file are handed back to the filesystem first when that is what it
        takes, so the reserve comes back even while something else keeps the disk full.
        """
        reserve = self._reserve
        if reserve.held:
            return
        needed = reserve.size + self.min_free_bytes
        try:
            if self._free_or_zero() < needed and self._auto_vacuum and self._free_pages:
                pages = math.ceil((needed - self._free_or_zero()) / self._page_size)
                # executescript steps the pragma to its end (execute would free a single page); the
                # checkpoint then cuts the file's end off.
                self._db.executescript(f"PRAGMA incremental_vacuum({min(pages, self._free_pages)});")
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._refresh_free_pages()
            if reserve.allocated() < reserve.size and self._free_or_zero() < needed:
                raise OSError(errno.ENOSPC, f"{self._free_or_zero()} bytes free, {needed} needed")
            reserve.allocate()
        except (OSError, sqlite3.Error) as exc:
            self._rollback()
            if not self._reserve_short:
                self._reserve_short = True
                log.warning("queue %s: no room for the %d-byte reserve yet (%s); new batches are refused until "
                            "there is", self.path, reserve.size, exc)
            return
        if self._reserve_short:
            self._reserve_short = False
            log.info("queue %s: the %d-byte reserve is allocated again", self.path, reserve.size)

    def _check_open(self) -> None:
        if self._lock_file is None:
            raise RuntimeError(f"queue {self.path} is closed")

    def close(self) -> None:
        """Close the database and release the file lock; idempotent. The reserve file stays for the next start."""
        with self._lock:
            if self._lock_file is None:
                return
            try:
                self._db.close()
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None


def _taken(parts: list[Batch], group: _Group, token: str | None) -> Taken:
    """A taken group; its token also rides in the batch's meta, the one thing an exporter is handed."""
    table = parts[0].table if len(parts) == 1 else pa.concat_tables([p.table for p in parts])
    meta = {"queue_group": str(group.first)}
    if token is not None:
        meta[DEDUP_TOKEN] = token
    return Taken(Batch(parts[0].signal, table, meta), group, token)


def queued_rows(path: Path) -> int:
    """Rows in a queue file, read without taking its lock (for operators and tests; may be a moment stale)."""
    if not os.path.exists(path):
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT coalesce(sum(rows), 0) FROM batches").fetchone()[0])
    finally:
        db.close()


def open_buffer(sink: str, config: QueueConfig | None, data_dir: Path) -> BatchBuffer:
    """The buffer of exporter ``sink``: on disk if its queue section says so (or, ``durable`` unset, if
    ``data_dir`` exists), else in memory."""
    if config is None:
        return MemoryBuffer()
    durable = config.durable if config.durable is not None else data_dir.is_dir()
    if not durable:
        return MemoryBuffer(config.max_queue_rows)
    directory = config.directory or data_dir / "queue"
    return DurableBuffer(queue_file(directory, sink), max_bytes=config.max_queue_bytes,
                         min_free_bytes=config.min_free_bytes, reserve_bytes=config.reserve_bytes)
