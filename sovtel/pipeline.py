"""The pipeline runtime: wires receivers → processors → queued exporters, and starts/stops them.

Receivers call ``consume`` on their own thread: processors run there, then the batch is placed in
every exporter's bounded queue, and only then is the request acknowledged. Each exporter has one
worker thread that coalesces queued batches into large inserts (thousands of rows) and retries
retryable failures with jittered backoff, so nothing accepted is dropped by a passing outage.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sovtel.component import (
    Accepted,
    Backpressure,
    ComponentContext,
    Consumer,
    Exporter,
    ExportResult,
    Processor,
    Receiver,
    Rejected,
)
from sovtel.config import Config, resolve_secret
from sovtel.records import Batch, Signal
from sovtel.telemetry import ComponentTelemetry, Telemetry

log = logging.getLogger("sovtel.pipeline")

DEFAULT_BATCH_ROWS = 20_000
DEFAULT_MAX_DELAY_S = 1.0
DEFAULT_QUEUE_ROWS = 500_000


@dataclass(frozen=True)
class QueueSettings:
    """How an exporter's queue batches and bounds its data."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    max_queue_rows: int = DEFAULT_QUEUE_ROWS
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0


class QueuedExporter:
    """A bounded in-memory queue and a worker thread in front of one exporter.

    ``enqueue`` is called on receiver threads and never blocks: a full queue raises Backpressure.
    The worker merges queued batches of the same signal up to ``batch_rows`` and exports them.
    """

    def __init__(
        self,
        name: str,
        exporter: Exporter,
        telemetry: ComponentTelemetry,
        settings: QueueSettings | None = None,
    ) -> None:
        self.name = name
        self.exporter = exporter
        self.telemetry = telemetry
        self.settings = settings or QueueSettings()
        self._queue: deque[Batch] = deque()
        self._queued_rows = 0
        self._in_flight_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._started = False

    @property
    def queued_rows(self) -> int:
        """Rows waiting or being exported."""
        with self._cond:
            return self._queued_rows + self._in_flight_rows

    def start(self) -> None:
        """Start the exporter and the worker thread."""
        if self._started:
            return
        self.exporter.start()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"export-{self.name}", daemon=True)
        self._thread.start()
        self._started = True

    def has_room(self, rows: int) -> bool:
        """Whether ``rows`` more rows fit under the queue bound."""
        with self._cond:
            return self._queued_rows + self._in_flight_rows + rows <= self.settings.max_queue_rows

    def enqueue(self, batch: Batch) -> None:
        """Queue a batch for export; raises Backpressure if the queue is full."""
        if batch.rows == 0:
            return
        with self._cond:
            if self._stop:
                raise Backpressure(f"exporter {self.name} is shutting down")
            if self._queued_rows + self._in_flight_rows + batch.rows > self.settings.max_queue_rows:
                raise Backpressure(f"exporter {self.name} queue is full ({self._queued_rows} records)")
            self._queue.append(batch)
            self._queued_rows += batch.rows
            self.telemetry.queue_depth(self._queued_rows + self._in_flight_rows)
            if self._queued_rows >= self.settings.batch_rows:
                self._cond.notify()

    def _take(self) -> Batch | None:
        """Wait for a full batch or the delay, then take up to batch_rows rows of one signal."""
        with self._cond:
            deadline: float | None = None
            while True:
                if self._queue:
                    if deadline is None:
                        deadline = time.monotonic() + self.settings.max_delay_s
                    if self._queued_rows >= self.settings.batch_rows or self._stop:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                else:
                    if self._stop:
                        return None
                    self._cond.wait(0.5)
            signal = self._queue[0].signal
            parts: list[Batch] = []
            rows = 0
            while self._queue and self._queue[0].signal == signal:
                if parts and rows + self._queue[0].rows > self.settings.batch_rows:
                    break
                b = self._queue.popleft()
                parts.append(b)
                rows += b.rows
            self._queued_rows -= rows
            self._in_flight_rows += rows
        if len(parts) == 1:
            return parts[0]
        table = pa.concat_tables([p.table for p in parts])
        return Batch(signal, table, parts[0].meta)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._deliver(batch)
            with self._cond:
                self._in_flight_rows -= batch.rows
                self.telemetry.queue_depth(self._queued_rows + self._in_flight_rows)
                self._cond.notify_all()

    def _deliver(self, batch: Batch) -> None:
        delay = self.settings.retry_initial_s
        while True:
            try:
                result = self.exporter.export(batch)
            except Exception:  # an exporter must not raise; if it does, treat it as retryable
                log.exception("exporter %s raised; will retry", self.name)
                result = ExportResult.RETRYABLE
            if result is ExportResult.SUCCESS:
                self.telemetry.sent(batch.signal.value, batch.rows)
                return
            if result is ExportResult.PERMANENT:
                self.telemetry.export_failure("permanent")
                self.telemetry.dropped(batch.signal.value, batch.rows, "export_rejected")
                log.error("exporter %s rejected %d %s records for good", self.name, batch.rows, batch.signal.value)
                return
            self.telemetry.export_failure("retryable")
            with self._cond:
                if self._stop and self._abandon:
                    self.telemetry.dropped(batch.signal.value, batch.rows, "shutdown_timeout")
                    log.error("exporter %s gave up %d records at shutdown", self.name, batch.rows)
                    return
                self._cond.wait(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.settings.retry_max_s)

    _abandon = False

    def flush(self, timeout: float = 30.0) -> bool:
        """Export everything queued now; True if the queue drained within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            saved = self.settings
            self.settings = QueueSettings(
                batch_rows=saved.batch_rows,
                max_delay_s=0.0,
                max_queue_rows=saved.max_queue_rows,
                retry_initial_s=saved.retry_initial_s,
                retry_max_s=saved.retry_max_s,
            )
            self._cond.notify_all()
            try:
                while self._queued_rows + self._in_flight_rows > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(remaining, 0.1))
                return True
            finally:
                self.settings = saved

    def shutdown(self, timeout: float = 30.0) -> None:
        """Flush, stop the worker and shut the exporter down; idempotent and safe without start."""
        if not self._started:
            self.exporter.shutdown()
            return
        drained = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._abandon = not drained
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        with self._cond:
            left = self._queued_rows
            if left:
                self.telemetry.dropped("any", left, "shutdown_timeout")
                log.error("exporter %s shut down with %d records unexported", self.name, left)
        self.exporter.shutdown()
        self._started = False


class Pipeline:
    """One configured pipeline: processors in order, then every exporter's queue."""

    def __init__(
        self,
        name: str,
        signal: Signal,
        processors: list[tuple[str, Processor]],
        outputs: list[QueuedExporter],
        telemetry: ComponentTelemetry,
    ) -> None:
        self.name = name
        self.signal = signal
        self.processors = processors
        self.outputs = outputs
        self.telemetry = telemetry
        self._lock = threading.Lock()

    def consume(self, batch: Batch) -> Accepted:
        """Run the processors and queue the result everywhere; raises Backpressure or Rejected."""
        if batch.signal is not self.signal:
            raise Rejected(f"pipeline {self.name} carries {self.signal.value}, not {batch.signal.value}")
        rows_in = batch.rows
        # Refuse before doing any work if an output cannot take the batch (no partial fan-out).
        for out in self.outputs:
            if not out.has_room(rows_in):
                self.telemetry.refused("backpressure")
                raise Backpressure(f"exporter {out.name} queue is full")
        self.telemetry.received(self.signal.value, rows_in)
        for pname, proc in self.processors:
            try:
                batch = proc(batch)
            except Rejected:
                raise
            except Exception as exc:
                # Fail closed: a processor that cannot process a batch must not let it through raw.
                log.exception("processor %s failed; dropping %d records", pname, batch.rows)
                self.telemetry.dropped(self.signal.value, batch.rows, f"processor_error:{pname}")
                raise Rejected(f"processor {pname} failed: {type(exc).__name__}") from exc
        with self._lock:
            for out in self.outputs:
                out.enqueue(batch)
        self.telemetry.sent(self.signal.value, batch.rows)
        return Accepted(accepted=rows_in, dropped=rows_in - batch.rows)


class FanOut:
    """The consumer a receiver sees for one signal: every pipeline that receiver feeds."""

    def __init__(self, pipelines: list[Pipeline]) -> None:
        self.pipelines = pipelines

    def consume(self, batch: Batch) -> Accepted:
        """Hand the batch to each pipeline; the first refusal is raised."""
        if len(self.pipelines) == 1:
            return self.pipelines[0].consume(batch)
        result = Accepted(0)
        for p in self.pipelines:
            r = p.consume(batch)
            result = Accepted(max(result.accepted, r.accepted), result.dropped + r.dropped)
        return result


def _queue_settings(cfg: Any) -> QueueSettings:
    q = getattr(cfg, "queue", None)
    if q is None:
        return QueueSettings()
    return QueueSettings(
        batch_rows=q.batch_rows, max_delay_s=q.max_delay_s, max_queue_rows=q.max_queue_rows
    )


class Service:
    """All pipelines of one configuration: start once, shut down once (idempotent)."""

    def __init__(
        self,
        config: Config,
        telemetry: Telemetry | None = None,
        secret_resolver: Callable[[str], str] = resolve_secret,
    ) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.secret_resolver = secret_resolver
        self.receivers: dict[str, Receiver] = {}
        self.exporters: dict[str, QueuedExporter] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.metrics_port: int | None = None
        self._started = False
        self._lock = threading.Lock()

    def _ctx(self, name: str) -> ComponentContext:
        s = self.config.service
        return ComponentContext(
            name=name,
            telemetry=self.telemetry.component(name),
            node=s.node,
            data_dir=s.data_dir,
            resolve_secret=self.secret_resolver,
        )

    def _create(self, kind: str, name: str) -> Any:
        spec = self.config.component(kind, name)
        return spec.module.create(self._ctx(name), spec.config)

    def start(self) -> None:
        """Create and start every component; on failure, stop what was started and re-raise."""
        with self._lock:
            if self._started:
                return
            try:
                self._start()
            except BaseException:
                self._shutdown()
                raise
            self._started = True

    def _start(self) -> None:
        svc = self.config.service
        for pname, pcfg in svc.pipelines.items():
            signal = self.config.pipeline_signal(pname)
            outputs = []
            for ename in pcfg.exporters:
                if ename not in self.exporters:
                    spec = self.config.component("exporters", ename)
                    qe = QueuedExporter(
                        ename,
                        self._create("exporters", ename),
                        self.telemetry.component(ename),
                        _queue_settings(spec.config),
                    )
                    qe.start()
                    self.exporters[ename] = qe
                outputs.append(self.exporters[ename])
            procs = [(n, self._create("processors", n)) for n in pcfg.processors]
            ptel = self.telemetry.component(f"pipeline/{pname}")
            self.pipelines[pname] = Pipeline(pname, signal, procs, outputs, ptel)
        consumers: dict[str, dict[Signal, list[Pipeline]]] = {}
        for pname, pcfg in svc.pipelines.items():
            for rname in pcfg.receivers:
                p = self.pipelines[pname]
                consumers.setdefault(rname, {}).setdefault(p.signal, []).append(p)
        for rname, by_signal in consumers.items():
            receiver = self._create("receivers", rname)
            fan: dict[Signal, Consumer] = {sig: FanOut(ps) for sig, ps in by_signal.items()}
            receiver.start(fan)
            self.receivers[rname] = receiver
        mcfg = svc.telemetry.metrics
        if mcfg.enabled:
            host, _, port = mcfg.address.rpartition(":")
            self.metrics_port = self.telemetry.serve(host or "127.0.0.1", int(port))

    def flush(self, timeout: float = 30.0) -> bool:
        """Export everything queued; True if all queues drained in time."""
        return all(q.flush(timeout) for q in list(self.exporters.values()))

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop receivers, drain queues, stop exporters and /metrics; idempotent, safe without start."""
        with self._lock:
            self._shutdown(timeout)
            self._started = False

    def _shutdown(self, timeout: float = 30.0) -> None:
        for r in list(self.receivers.values()):
            try:
                r.shutdown()
            except Exception:
                log.exception("receiver shutdown failed")
        self.receivers.clear()
        for q in list(self.exporters.values()):
            try:
                q.shutdown(timeout)
            except Exception:
                log.exception("exporter %s shutdown failed", q.name)
        self.exporters.clear()
        self.pipelines.clear()
        self.telemetry.shutdown()
