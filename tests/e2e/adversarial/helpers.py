"""What the adversarial scenarios share: a running collector, a store outage, and the spans stored per trace."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from sovtel.component import ExportResult
from sovtel.config import parse_config
from sovtel.pipeline import Service
from sovtel.records import Batch
from storage.backend import open_store


@contextlib.contextmanager
def running(config: dict[str, Any]) -> Iterator[tuple[Service, int]]:
    """A collector started from ``config`` and its OTLP/HTTP port, shut down on leaving."""
    svc = Service(parse_config(config))
    svc.start()
    try:
        yield svc, svc.receivers["otlp"].http_port  # type: ignore[attr-defined]
    finally:
        svc.shutdown()


class Outage:
    """Wraps an exporter; while ``down`` is set, exports fail as RETRYABLE (the first one after inserting).

    That first insert of each outage lands but its answer is "lost" (``ambiguous`` counts those that
    landed): the queue must replay it harmlessly, which only the dedup token makes so.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.failed = 0
        self.ambiguous = 0
        self._inserted_this_outage = False

    def start(self) -> None:
        self.inner.start()

    def shutdown(self) -> None:
        self.inner.shutdown()

    def fail(self) -> None:
        self._inserted_this_outage = False
        self.down.set()

    def export(self, batch: Batch) -> ExportResult:
        if self.down.is_set():
            self.failed += 1
            if not self._inserted_this_outage:
                # The insert lands but the answer is lost: the queue must replay it harmlessly.
                self._inserted_this_outage = True
                if self.inner.export(batch) is ExportResult.SUCCESS:
                    self.ambiguous += 1
            return ExportResult.RETRYABLE
        result: ExportResult = self.inner.export(batch)
        return result


def stored_counts(dsn: str, db: str) -> Counter[str]:
    """Stored spans per trace id."""
    store = open_store({"dsn": dsn})
    try:
        return Counter({str(t): int(c) for t, c in store.query_rows(
            f"SELECT trace_id, count() FROM {db}.spans GROUP BY trace_id")})
    finally:
        store.close()
