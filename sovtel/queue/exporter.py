"""An exporter behind its queue: a buffer and one worker thread that batches, retries and acknowledges.

Receivers' threads only put batches into the buffer (and get Backpressure when it is full); the
worker coalesces queued batches into large inserts (thousands of rows) and retries retryable
failures with jittered backoff, so nothing accepted is dropped by a passing outage.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from sovtel.component import Backpressure, Exporter, ExportResult
from sovtel.queue.buffer import BatchBuffer, MemoryBuffer, QueueSettings, Taken
from sovtel.records import Batch
from sovtel.routing import SinkPolicy
from sovtel.telemetry import ComponentTelemetry

log = logging.getLogger("sovtel.pipeline")


class QueuedExporter:
    """A buffer and a worker thread in front of one exporter.

    ``enqueue`` is called on receiver threads and never waits for the exporter: a full buffer raises
    Backpressure. The worker takes groups of queued batches of one signal up to ``batch_rows`` rows
    (coalescing small requests into large inserts), exports them, and removes them from the buffer
    only once the exporter returned SUCCESS (or PERMANENT, counted as dropped). Retryable failures
    are retried with jittered exponential backoff. With a durable buffer, rows still queued at
    shutdown stay on disk and are delivered after the next start.
    """

    def __init__(
        self,
        name: str,
        exporter: Exporter,
        telemetry: ComponentTelemetry,
        settings: QueueSettings | None = None,
        buffer: BatchBuffer | None = None,
        policy: SinkPolicy | None = None,
    ) -> None:
        self.name = name
        self.exporter = exporter
        self.telemetry = telemetry
        self.settings = settings or QueueSettings()
        self.buffer: BatchBuffer = buffer if buffer is not None else MemoryBuffer(self.settings.max_queue_rows)
        self.policy = policy or SinkPolicy()
        self._cond = threading.Condition()
        self._stop = False
        self._abandon = False
        self._flushing = 0
        self._thread: threading.Thread | None = None
        self._started = False

    @property
    def queued_rows(self) -> int:
        """Rows waiting or being exported."""
        return self.buffer.pending_rows

    def start(self) -> None:
        """Start the exporter and the worker thread (which first resumes what a durable buffer holds)."""
        if self._started:
            return
        self.exporter.start()
        self._stop = False
        self._abandon = False
        self._thread = threading.Thread(target=self._run, name=f"export-{self.name}", daemon=True)
        self._thread.start()
        self._started = True
        self.telemetry.queue_depth(self.buffer.pending_rows)

    def has_room(self, rows: int) -> bool:
        """Whether ``rows`` more rows fit under the buffer's bound (a cheap check before processing)."""
        return self.buffer.fits(None, rows)

    def fits(self, batch: Batch) -> bool:
        """Whether ``batch`` fits under the buffer's bound now."""
        return self.buffer.fits(batch)

    def enqueue(self, batch: Batch, checked: bool = False) -> None:
        """Queue a batch for export; raises Backpressure if the buffer is full (unless ``checked`` already).

        Returns once the buffer holds the batch: for a durable buffer, once it is on disk.
        """
        if batch.rows == 0:
            return
        if self._stop:
            raise Backpressure(f"exporter {self.name} is shutting down")
        if not checked and not self.buffer.fits(batch):
            raise Backpressure(f"exporter {self.name} queue is full ({self.buffer.pending_rows} records)")
        try:
            self.buffer.put(batch)
        except Backpressure as exc:
            # A durable buffer refuses (retryably) below its disk watermark or when the disk fails a write.
            self.telemetry.refused(getattr(exc, "reason", "queue_full"))
            raise
        pending = self.buffer.pending_rows
        self.telemetry.queue_depth(pending)
        if self.buffer.ready_rows >= self.settings.batch_rows:
            with self._cond:
                self._cond.notify_all()

    def _wait_for_group(self) -> bool:
        """Wait for a full batch, the delay, a flush or stop; False when the worker should exit."""
        with self._cond:
            deadline: float | None = None
            while True:
                ready = self.buffer.ready_rows
                if ready:
                    if deadline is None:
                        deadline = time.monotonic() + self.settings.max_delay_s
                    if ready >= self.settings.batch_rows or self._stop or self._flushing:
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return True
                    self._cond.wait(min(remaining, 0.5))
                else:
                    if self._stop:
                        return False
                    self._cond.wait(0.5)

    def _run(self) -> None:
        failures = 0
        while self._wait_for_group():
            try:
                taken = self.buffer.take(self.settings.batch_rows)
            except Exception:  # a broken buffer read must not kill the worker; it is retried
                self._log_retry(failures, "reading its queue failed")
                with self._cond:
                    self._cond.wait(self._backoff(failures))
                failures += 1
                continue
            failures = 0
            if taken is None:
                continue
            delivered = self._deliver(taken.batch)
            if delivered:
                self._ack(taken)
            with self._cond:
                self.telemetry.queue_depth(self.buffer.pending_rows)
                self._cond.notify_all()
            if not delivered:
                return

    def _ack(self, taken: Taken) -> None:
        failures = 0
        while True:
            try:
                self.buffer.ack(taken)
                return
            except Exception:  # the export is done; forgetting it must eventually succeed
                self._log_retry(failures, "removing an exported group from its queue failed")
                time.sleep(self._backoff(failures))
                failures += 1

    def _backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures of the same queue operation."""
        return float(min(self.settings.retry_initial_s * 2**min(failures, 16), self.settings.retry_max_s))

    def _log_retry(self, failures: int, what: str) -> None:
        """The first failure of a run with its traceback, then one line per ten, so a long fault does not flood."""
        if failures == 0:
            log.exception("exporter %s: %s; retrying", self.name, what)
        elif failures % 10 == 0:
            log.warning("exporter %s: %s (%d times in a row); retrying", self.name, what, failures + 1)

    def _deliver(self, batch: Batch) -> bool:
        """Export until SUCCESS or PERMANENT (True), or until an abandoning shutdown (False)."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                result = self.exporter.export(batch)
            except Exception:  # an exporter must not raise; if it does, treat it as retryable
                log.exception("exporter %s raised; will retry", self.name)
                result = ExportResult.RETRYABLE
            if result is ExportResult.SUCCESS:
                self.telemetry.sent(batch.signal.value, batch.rows)
                return True
            if result is ExportResult.PERMANENT:
                self.telemetry.export_failure("permanent")
                self.telemetry.dropped(batch.signal.value, batch.rows, "export_rejected")
                log.error("exporter %s rejected %d %s records for good", self.name, batch.rows, batch.signal.value)
                return True
            self.telemetry.export_failure("retryable")
            with self._cond:
                if self._stop and self._abandon:
                    # Counted (or kept on disk) by shutdown, with everything else still queued.
                    return False
                self._cond.wait(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.settings.retry_max_s)

    def flush(self, timeout: float = 30.0) -> bool:
        """Export everything queued now; True if the queue drained within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self.buffer.pending_rows > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(remaining, 0.1))
                return True
            finally:
                self._flushing -= 1

    def shutdown(self, timeout: float = 30.0) -> None:
        """Flush, stop the worker and shut the exporter down; idempotent and safe without start.

        Rows a durable buffer still holds after ``timeout`` stay on disk for the next start; an
        in-memory buffer counts them as dropped (``shutdown_timeout``).
        """
        if not self._started:
            self.exporter.shutdown()
            self.buffer.close()
            return
        drained = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._abandon = not drained
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        left = self.buffer.pending_rows
        if left and self.buffer.durable:
            log.warning("exporter %s: %d records stay queued on disk; they are delivered after the next start",
                        self.name, left)
        elif left:
            self.telemetry.dropped("any", left, "shutdown_timeout")
            log.error("exporter %s shut down with %d records unexported", self.name, left)
        self.exporter.shutdown()
        self.buffer.close()
        self._started = False
