"""The durable per-sink queue: a write-ahead buffer of processed batches in SQLite (WAL, synchronous=FULL).

A batch is stored as Arrow IPC bytes before the receiver acknowledges it, and deleted only after
the sink accepted it. The worker *claims* a group of queued batches before exporting it, and
commits with the claim the group's dedup token, hashed from the stored bytes. After a crash the
same group — the same rows in the same order, with the same token — is replayed first, and
ClickHouse skips what it had already stored. The queue holds processed data only (ADR 0001); its
size is bounded by a byte budget, beyond which receivers get a retryable refusal.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO

import pyarrow as pa

from sovtel.queue.buffer import DEFAULT_QUEUE_BYTES, BatchBuffer, MemoryBuffer, QueueConfig, Taken
from sovtel.queue.dedup import DEDUP_TOKEN, stored_group_token
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.queue")

# How many queued batches one group may combine; a group is also bounded by the sink's batch_rows.
_MAX_GROUP_BATCHES = 10_000

# ``claims`` came after ``batches``: a group claimed by a release without it has no token, and the
# sink then hashes the rows, as that release did, so its replay keeps the token it was sent with.
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
    token TEXT NOT NULL
);
"""


class QueueInUseError(RuntimeError):
    """Another process holds this queue file."""


def queue_file(directory: Path, sink: str) -> Path:
    """The queue file of sink ``sink`` (``clickhouse/local`` → ``clickhouse__local.sqlite``) in ``directory``."""
    return directory / (re.sub(r"[^A-Za-z0-9_.-]", "__", sink) + ".sqlite")


def encode(batch: Batch) -> bytes:
    """The batch's table as Arrow IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.table.schema) as writer:
        writer.write_table(batch.table)
    return bytes(sink.getvalue())


def decode(signal: str, payload: bytes) -> Batch:
    """A batch from its stored signal name and Arrow IPC bytes (zero-copy: its buffers are slices of ``payload``)."""
    with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
        table = reader.read_all()
    return Batch(Signal(signal), table)


class DurableBuffer:
    """A ``BatchBuffer`` on disk; one file per sink, one process per file.

    Thread-safe: one SQLite connection behind one lock; ``take`` and ``ack`` run on one worker
    thread. ``put`` commits with synchronous=FULL (fsync) before it returns, so an acknowledged
    batch survives SIGKILL and power loss of the node's page cache. The byte budget counts stored
    payload bytes.
    """

    durable = True

    def __init__(self, path: Path, max_bytes: int = DEFAULT_QUEUE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[str] | None = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the buffer's life
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise QueueInUseError(f"queue {path} is in use by another process") from None
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # A release without ``claims`` acknowledges groups without forgetting their tokens.
        self._db.execute(
            "DELETE FROM claims WHERE group_id NOT IN (SELECT group_id FROM batches WHERE group_id IS NOT NULL)"
        )
        self._lock = threading.Lock()
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0) FROM batches"
        ).fetchone()
        self._batches, self._rows, self._bytes = (int(v) for v in row)
        # Claimed groups a previous run did not finish are offered (again) first; they count as ready.
        self._resume: list[int] = [
            int(g) for (g,) in self._db.execute(
                "SELECT group_id FROM batches WHERE group_id IS NOT NULL GROUP BY group_id ORDER BY min(id)"
            )
        ]
        self._in_flight = 0
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

    def fits(self, batch: Batch | None, rows: int = 0) -> bool:
        """Whether the batch (its in-memory size, about its IPC size) fits under the byte budget now."""
        size = int(batch.table.nbytes) if batch is not None else 0
        with self._lock:
            return self._bytes + size <= self.max_bytes if size else self._bytes < self.max_bytes

    def put(self, batch: Batch) -> None:
        """Write the batch and fsync; returns once it is durable."""
        payload = encode(batch)
        with self._lock:
            self._check_open()
            self._db.execute(
                "INSERT INTO batches (signal, rows, bytes, enqueued_at, payload) VALUES (?, ?, ?, ?, ?)",
                (batch.signal.value, batch.rows, len(payload), time.time(), payload),
            )
            self._batches += 1
            self._rows += batch.rows
            self._bytes += len(payload)

    def take(self, max_rows: int) -> Taken | None:
        """The next group: an unfinished claimed group first, else the oldest unclaimed batches of one signal."""
        if self._resume:
            return self._take_claimed()
        with self._lock:
            self._check_open()
            head = self._db.execute(
                "SELECT id, signal, rows FROM batches WHERE group_id IS NULL ORDER BY id LIMIT ?",
                (_MAX_GROUP_BATCHES,),
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
                "SELECT payload FROM batches WHERE id BETWEEN ? AND ? AND group_id IS NULL ORDER BY id",
                (ids[0], ids[-1]),
            )]
        # Hashing runs outside the lock so receivers can put meanwhile; only this worker thread
        # claims, and puts only add later ids, so the rows read are still the rows claimed below.
        parts = [decode(signal, p) for p in payloads]
        token = stored_group_token(Signal(signal), payloads, [p.table for p in parts])
        group = ids[0]
        with self._lock:
            self._check_open()
            # The claim and its token are committed (fsynced) before the export, so a replay sends
            # the same group under the same token.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE batches SET group_id = ? WHERE id BETWEEN ? AND ? AND group_id IS NULL",
                    (group, ids[0], ids[-1]),
                )
                self._db.execute("INSERT INTO claims (group_id, token) VALUES (?, ?)", (group, token))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._in_flight += total
        return _taken(parts, group, total, token)

    def _take_claimed(self) -> Taken | None:
        """The oldest group a previous run claimed and did not finish, with the token it was claimed with."""
        with self._lock:
            self._check_open()
            group = self._resume[0]
            rows = self._db.execute(
                "SELECT signal, rows, payload FROM batches WHERE group_id = ? ORDER BY id", (group,)
            ).fetchall()
            if not rows:
                self._resume.pop(0)
                return None
            found = self._db.execute("SELECT token FROM claims WHERE group_id = ?", (group,)).fetchone()
            n_rows = sum(int(r[1]) for r in rows)
            self._in_flight += n_rows
        parts = [decode(sig, payload) for sig, _, payload in rows]
        return _taken(parts, group, n_rows, str(found[0]) if found else None)

    def ack(self, taken: Taken) -> None:
        """Delete the group and its claim; it was exported (or rejected for good)."""
        group, n_rows = taken.handle
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = self._db.execute(
                    "DELETE FROM batches WHERE group_id = ? RETURNING rows, bytes", (group,)
                ).fetchall()
                self._db.execute("DELETE FROM claims WHERE group_id = ?", (group,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._batches -= len(removed)
            self._rows -= sum(int(r[0]) for r in removed)
            self._bytes -= sum(int(r[1]) for r in removed)
            self._in_flight -= n_rows
            if self._resume and self._resume[0] == group:
                self._resume.pop(0)

    def _check_open(self) -> None:
        if self._lock_file is None:
            raise RuntimeError(f"queue {self.path} is closed")

    def close(self) -> None:
        """Close the database and release the file lock; idempotent."""
        with self._lock:
            if self._lock_file is None:
                return
            try:
                self._db.close()
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None


def _taken(parts: list[Batch], group: int, rows: int, token: str | None) -> Taken:
    """A taken group; its token also rides in the batch's meta, the one thing an exporter is handed."""
    table = parts[0].table if len(parts) == 1 else pa.concat_tables([p.table for p in parts])
    meta = {"queue_group": str(group)}
    if token is not None:
        meta[DEDUP_TOKEN] = token
    return Taken(Batch(parts[0].signal, table, meta), (group, rows), token)


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
    return DurableBuffer(queue_file(directory, sink), max_bytes=config.max_queue_bytes)
