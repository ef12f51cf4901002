"""Test doubles that ship with the package, so users can test their own wiring too."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from sovtel.component import Accepted, Backpressure, Rejected
from sovtel.records import Batch, Signal, empty_table


class InMemoryConsumer:
    """A ``Consumer`` that keeps every batch in memory; it can be told to refuse the next calls.

    Thread-safe: receivers call ``consume`` from their own threads.
    """

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.refusals = 0  # calls refused so far
        self._refuse: list[Exception] = []
        self._full = False
        self._drop = 0
        self._cond = threading.Condition()

    def consume(self, batch: Batch) -> Accepted:
        """Keep the batch, or raise what ``refuse_next`` / ``set_full`` asked for."""
        with self._cond:
            if self._refuse:
                self.refusals += 1
                raise self._refuse.pop(0)
            if self._full:
                self.refusals += 1
                raise Backpressure("in-memory consumer is full")
            dropped = min(self._drop, batch.rows)
            self.batches.append(batch)
            self._cond.notify_all()
        return Accepted(accepted=batch.rows - dropped, dropped=dropped)

    def refuse_next(self, n: int = 1, error: type[Exception] = Backpressure) -> None:
        """Make the next ``n`` calls raise ``error`` (Backpressure or Rejected) instead of keeping the batch."""
        if error not in (Backpressure, Rejected):
            raise ValueError("error must be Backpressure or Rejected")
        with self._cond:
            self._refuse.extend(error(f"refused by test consumer ({i + 1} of {n})") for i in range(n))

    def set_full(self, full: bool) -> None:
        """While full, every call raises Backpressure."""
        with self._cond:
            self._full = full

    def report_dropped(self, rows: int) -> None:
        """Report up to ``rows`` of each later batch as dropped (as a filtering processor would)."""
        with self._cond:
            self._drop = rows

    @property
    def rows(self) -> int:
        """Records kept so far."""
        with self._cond:
            return sum(b.rows for b in self.batches)

    def table(self, signal: Signal = Signal.TRACES) -> pa.Table:
        """Every kept record of ``signal`` as one table."""
        with self._cond:
            tables = [b.table for b in self.batches if b.signal is signal]
        return pa.concat_tables(tables) if tables else empty_table(signal)

    def wait_for_rows(self, rows: int, timeout: float = 10.0) -> bool:
        """Block until at least ``rows`` records were kept; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(b.rows for b in self.batches) < rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget the kept batches."""
        with self._cond:
            self.batches.clear()
