"""Where an exporter's batches wait: the buffer contract, the in-memory buffer and the queue settings.

Exporters embed ``QueueConfig`` as their ``queue:`` section; the runtime reads it through
``queue_config`` and turns it into ``QueueSettings`` and a buffer (``open_buffer``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from pydantic import Field, model_validator

from sovtel.component import ComponentConfig
from sovtel.records import Batch

DEFAULT_BATCH_ROWS = 20_000
DEFAULT_MAX_DELAY_S = 1.0
DEFAULT_QUEUE_ROWS = 500_000
DEFAULT_QUEUE_BYTES = 1024**3
DEFAULT_RESERVE_BYTES = 4 * 1024**2


class QueueConfig(ComponentConfig):
    """How the pipeline batches and buffers rows for one exporter: the ``queue:`` section exporters embed."""

    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS, ge=1, description="Rows per insert; ClickHouse prefers thousands."
    )
    max_delay_s: float = Field(
        default=DEFAULT_MAX_DELAY_S, ge=0, description="Longest a row waits for its batch to fill."
    )
    max_queue_rows: int = Field(
        default=DEFAULT_QUEUE_ROWS,
        ge=1,
        description="Rows an in-memory queue holds before receivers get back-pressure.",
    )
    durable: bool | None = Field(
        default=None,
        description="Queue on disk (SQLite WAL) so acknowledged rows survive a crash; unset: durable when the "
        "service's data_dir exists. false keeps the in-memory queue (rows are lost on a crash).",
    )
    max_queue_bytes: int = Field(
        default=DEFAULT_QUEUE_BYTES,
        ge=1024 * 1024,
        description="Disk budget of the durable queue; beyond it receivers get 429.",
    )
    min_free_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Free space the durable queue leaves on its filesystem: below it receivers get 429 before the "
        "disk fills; unset: 5% of the filesystem, at most 1 GiB. Leave room for a store on the same disk.",
    )
    reserve_bytes: int = Field(
        default=DEFAULT_RESERVE_BYTES,
        ge=0,
        description="Space pre-allocated next to the durable queue and released when the disk is full, so "
        "delivered batches can still be deleted (0: no reserve).",
    )
    directory: Path | None = Field(default=None, description="Where the durable queue lives (default data_dir/queue).")

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> QueueConfig:
        if self.max_queue_rows < self.batch_rows:
            raise ValueError(f"max_queue_rows ({self.max_queue_rows}) must be at least batch_rows ({self.batch_rows})")
        return self


def queue_config(exporter_config: object) -> QueueConfig | None:
    """The ``queue: QueueConfig`` section an exporter's configuration declares; None if it declares none."""
    section = getattr(exporter_config, "queue", None)
    return section if isinstance(section, QueueConfig) else None


@dataclass(frozen=True)
class QueueSettings:
    """How an exporter's queue batches and bounds its data."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    max_queue_rows: int = DEFAULT_QUEUE_ROWS
    retry_initial_s: float = 0.2
    # Short enough that delivery resumes within seconds of a store coming back after a long outage.
    retry_max_s: float = 5.0

    @classmethod
    def of(cls, config: QueueConfig | None) -> QueueSettings:
        """The settings a queue section asks for; the defaults without one."""
        if config is None:
            return cls()
        return cls(batch_rows=config.batch_rows, max_delay_s=config.max_delay_s, max_queue_rows=config.max_queue_rows)


@dataclass
class Taken:
    """A group of queued batches taken for one export.

    ``handle`` is the buffer's own reference. ``dedup_token`` names the group's content as stored
    and is the same each time the group is offered again (also after a restart); None when the
    buffer keeps no stored form, and the sink derives a token from the rows itself.
    """

    batch: Batch
    handle: Any
    dedup_token: str | None = None


class BatchBuffer(Protocol):
    """Where an exporter's batches wait: in memory (``MemoryBuffer``) or on disk (``DurableBuffer``).

    Thread-safe: ``put`` is called on receiver threads, ``take``/``ack`` on the worker thread.
    Groups are taken oldest first, one signal per group; a taken group stays in the buffer (and
    counts as pending) until acknowledged, and is offered again first if the process restarts.
    """

    durable: bool

    def fits(self, batch: Batch | None, rows: int = 0) -> bool:
        """Whether ``batch`` (or, with None, ``rows`` more rows) fits under the buffer's bound now."""
        ...

    def put(self, batch: Batch) -> None:
        """Store ``batch``; when this returns the batch survives what the buffer promises (a crash, if durable)."""
        ...

    def take(self, max_rows: int) -> Taken | None:
        """The oldest group of one signal, up to ``max_rows`` rows (at least one batch); None if empty."""
        ...

    def ack(self, taken: Taken) -> None:
        """Forget a taken group: it was exported, or rejected for good."""
        ...

    @property
    def pending_rows(self) -> int:
        """Rows stored and not yet acknowledged (waiting or in flight)."""
        ...

    @property
    def ready_rows(self) -> int:
        """Rows waiting to be taken."""
        ...

    def close(self) -> None:
        """Release files; idempotent."""
        ...


class MemoryBuffer:
    """A bounded in-memory buffer (``max_queue_rows``); lost on a crash, so only where a config asks for it."""

    durable = False

    def __init__(self, max_rows: int = DEFAULT_QUEUE_ROWS) -> None:
        self.max_rows = max_rows
        self._queue: deque[Batch] = deque()
        self._ready = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def fits(self, batch: Batch | None, rows: int = 0) -> bool:
        """Whether the rows fit under ``max_rows``."""
        n = batch.rows if batch is not None else rows
        with self._lock:
            return self._ready + self._in_flight + n <= self.max_rows

    def put(self, batch: Batch) -> None:
        """Append the batch."""
        with self._lock:
            self._queue.append(batch)
            self._ready += batch.rows

    def take(self, max_rows: int) -> Taken | None:
        """Pop up to ``max_rows`` rows of the oldest batch's signal."""
        with self._lock:
            if not self._queue:
                return None
            signal = self._queue[0].signal
            parts: list[Batch] = []
            rows = 0
            while self._queue and self._queue[0].signal == signal:
                if parts and rows + self._queue[0].rows > max_rows:
                    break
                b = self._queue.popleft()
                parts.append(b)
                rows += b.rows
            self._ready -= rows
            self._in_flight += rows
        if len(parts) == 1:
            return Taken(parts[0], rows)
        return Taken(Batch(signal, pa.concat_tables([p.table for p in parts]), parts[0].meta), rows)

    def ack(self, taken: Taken) -> None:
        """Forget the group."""
        with self._lock:
            self._in_flight -= int(taken.handle)

    @property
    def pending_rows(self) -> int:
        """Rows waiting or in flight."""
        with self._lock:
            return self._ready + self._in_flight

    @property
    def ready_rows(self) -> int:
        """Rows waiting."""
        with self._lock:
            return self._ready

    def close(self) -> None:
        """Nothing to release."""
