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
from pathlib import Path
from typing import Any, Protocol

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
    shutdown_component,
    start_component,
)
from sovtel.config import Config, resolve_secret
from sovtel.records import Batch, Signal
from sovtel.routing import RouteLog, Router, SinkPolicy, route_counter, sink_policy
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


@dataclass
class Taken:
    """A group of queued batches taken for one export; ``handle`` is the buffer's own reference."""

    batch: Batch
    handle: Any


class BatchBuffer(Protocol):
    """Where an exporter's batches wait: in memory, or on disk (``storage.queue.DurableBuffer``).

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
        self.buffer.put(batch)
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
        while self._wait_for_group():
            try:
                taken = self.buffer.take(self.settings.batch_rows)
            except Exception:  # a broken buffer read must not kill the worker; it is retried
                log.exception("exporter %s: reading its queue failed; retrying", self.name)
                with self._cond:
                    self._cond.wait(self.settings.retry_initial_s)
                continue
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
        while True:
            try:
                self.buffer.ack(taken)
                return
            except Exception:  # the export is done; forgetting it must eventually succeed
                log.exception("exporter %s: removing an exported group from its queue failed; retrying", self.name)
                time.sleep(self.settings.retry_initial_s)

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


class Pipeline:
    """One configured pipeline: processors in order, then the tier router, then each permitted sink's queue."""

    def __init__(
        self,
        name: str,
        signal: Signal,
        processors: list[tuple[str, Processor]],
        outputs: list[QueuedExporter],
        telemetry: ComponentTelemetry,
        router: Router | None = None,
    ) -> None:
        self.name = name
        self.signal = signal
        self.processors = processors
        self.outputs = outputs
        self.telemetry = telemetry
        self.router = router or Router(name, {o.name: o.policy for o in outputs})
        self._by_name = {o.name: o for o in outputs}
        self._lock = threading.Lock()

    def consume(self, batch: Batch) -> Accepted:
        """Process, route by tier and queue; returns once every sink's buffer holds its rows.

        Raises Backpressure (nothing queued anywhere) or Rejected. Rows no permitted sink takes are
        dropped, counted by reason, and reported in ``Accepted.dropped``.
        """
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
        processed = batch.rows
        routed = self.router.route(batch)
        with self._lock:
            for r in routed.routes:
                if not self._by_name[r.sink].fits(r.batch):
                    self.telemetry.refused("backpressure")
                    raise Backpressure(f"exporter {r.sink} queue is full")
            for r in routed.routes:
                self._by_name[r.sink].enqueue(r.batch, checked=True)
        self.router.record(routed)
        for reason, n in routed.dropped.items():
            self.telemetry.dropped(self.signal.value, n, reason)
        delivered = processed - sum(routed.dropped.values())
        self.telemetry.sent(self.signal.value, delivered)
        return Accepted(accepted=rows_in, dropped=rows_in - delivered)


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
        self._started_processors: list[Processor] = []
        self.metrics_port: int | None = None
        self.route_log: RouteLog | None = None
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

    def _buffer(self, ename: str, cfg: Any, settings: QueueSettings) -> BatchBuffer:
        """The exporter's buffer: durable if its queue config says so, or (``durable`` unset) if data_dir exists."""
        q = getattr(cfg, "queue", None)
        durable = getattr(q, "durable", False) if q is not None else False
        data_dir = self.config.service.data_dir
        if durable is None:
            durable = data_dir.is_dir()
        if not durable or q is None:
            return MemoryBuffer(settings.max_queue_rows)
        from storage.queue import DurableBuffer, queue_file

        directory = getattr(q, "directory", None) or data_dir / "queue"
        return DurableBuffer(queue_file(Path(directory), ename), max_bytes=int(q.max_queue_bytes))

    def _start(self) -> None:
        svc = self.config.service
        if svc.data_dir.is_dir():
            self.route_log = RouteLog(svc.data_dir / "audit" / "routes.jsonl")
        else:
            log.warning("data_dir %s does not exist: routing decisions are counted but not logged to a file",
                        svc.data_dir)
        counters = route_counter(self.telemetry.registry)
        for pname, pcfg in svc.pipelines.items():
            signal = self.config.pipeline_signal(pname)
            outputs = []
            for ename in pcfg.exporters:
                if ename not in self.exporters:
                    spec = self.config.component("exporters", ename)
                    settings = _queue_settings(spec.config)
                    qe = QueuedExporter(
                        ename,
                        self._create("exporters", ename),
                        self.telemetry.component(ename),
                        settings,
                        buffer=self._buffer(ename, spec.config, settings),
                        policy=sink_policy(spec.config),
                    )
                    self.exporters[ename] = qe
                    qe.start()
                outputs.append(self.exporters[ename])
            procs = [(n, self._create("processors", n)) for n in pcfg.processors]
            for n, proc in procs:
                self._started_processors.append(proc)
                start_component(proc, self._ctx(n))
            ptel = self.telemetry.component(f"pipeline/{pname}")
            router = Router(pname, {o.name: o.policy for o in outputs}, pcfg.tiers, counters, self.route_log)
            self.pipelines[pname] = Pipeline(pname, signal, procs, outputs, ptel, router)
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
        for proc in reversed(self._started_processors):
            try:
                shutdown_component(proc)
            except Exception:
                log.exception("processor shutdown failed")
        self._started_processors.clear()
        self.pipelines.clear()
        if self.route_log is not None:
            self.route_log.flush()
        self.telemetry.shutdown()
