"""The pipeline runtime: wires receivers → processors → queued exporters, and starts/stops them.

Receivers call ``consume`` on their own thread: processors run there, then the batch is placed in
every exporter's queue (``sovtel.queue``), and only then is the request acknowledged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from sovtel.admission import OLDER_THAN_RETENTION, RetentionGate, sink_retention
from sovtel.component import (
    Accepted,
    Backpressure,
    ComponentContext,
    Consumer,
    Processor,
    Receiver,
    Rejected,
    shutdown_component,
    start_component,
)
from sovtel.config import Config, resolve_secret
from sovtel.dedup import (
    Answer,
    DedupConfig,
    DedupWindow,
    Keys,
    Mask,
    dedup_config,
    first_occurrences,
    request_digest,
    span_keys,
)
from sovtel.queue import QueuedExporter, QueueSettings, open_buffer, queue_config
from sovtel.records import Batch, Signal
from sovtel.routing import Routed, RouteLog, Router, route_counter, sink_policy
from sovtel.telemetry import ComponentTelemetry, Telemetry

log = logging.getLogger("sovtel.pipeline")

# Reasons rows are dropped for (sovtel_dropped_records_total, Accepted.reasons).
DUPLICATE = "duplicate"  # already queued within the dedup window: stored once, answered as accepted
DROPPED_BY_PROCESSOR = "dropped_by_processor"  # a privacy processor dropped them (counted by its own reason)


class Pipeline:
    """One configured pipeline: processors in order, then the tier router, then each permitted sink's queue.

    Before queueing it drops what would not be stored once (spans and requests it already queued
    within the dedup window: reason ``duplicate``, answered as success since they are stored) or
    at all (rows older than their sinks' retention: ``older_than_retention``, reported to the
    client in ``Accepted``).
    """

    def __init__(
        self,
        name: str,
        signal: Signal,
        processors: list[tuple[str, Processor]],
        outputs: list[QueuedExporter],
        telemetry: ComponentTelemetry,
        router: Router | None = None,
        retention: Mapping[str, dt.timedelta | None] | None = None,
        dedup: DedupConfig | None = None,
    ) -> None:
        self.name = name
        self.signal = signal
        self.processors = processors
        self.outputs = outputs
        self.telemetry = telemetry
        self.router = router or Router(name, {o.name: o.policy for o in outputs})
        self.retention = RetentionGate(self.router.sinks, retention or {})
        dedup = dedup or DedupConfig()
        self.dedup = DedupWindow(dedup) if dedup.enabled else None
        self._by_name = {o.name: o for o in outputs}
        self._lock = threading.Lock()

    def consume(self, batch: Batch) -> Accepted:
        """Process, deduplicate, route by tier and queue; returns once every sink's buffer holds its rows.

        Raises Backpressure (nothing queued anywhere) or Rejected. Rows no sink will store are
        dropped, counted by reason, and reported in ``Accepted.dropped`` / ``Accepted.reasons``;
        resent rows already stored are dropped as ``duplicate`` and answered as accepted.
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
        # A log or metric request is recognised by its rows as received, before processors add anything.
        digest = request_digest(batch) if self.dedup is not None else None
        if digest is not None:
            with self._lock:
                replay = self._replay(digest, rows_in)
            if replay is not None:
                return replay
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
        reasons: dict[str, int] = {}
        if batch.rows < rows_in:
            reasons[DROPPED_BY_PROCESSOR] = rows_in - batch.rows  # each processor counted its own reason
        batch, old = self.retention.admit(batch)
        if old:
            reasons[OLDER_THAN_RETENTION] = old
        keys, identified = self._span_keys(batch)
        duplicates = 0
        if keys is not None and identified is not None:
            # A span sent twice inside one request is stored once too.
            batch, keys, identified, duplicates = _keep(batch, keys, identified, first_occurrences(keys[identified]))
        routed = self.router.route(batch)
        with self._lock:
            if digest is not None:
                replay = self._replay(digest, rows_in)  # an identical request queued meanwhile
                if replay is not None:
                    return replay
            if self.dedup is not None and keys is not None and identified is not None:
                batch, keys, identified, resent = _keep(batch, keys, identified, ~self.dedup.seen(keys[identified]))
                if resent:
                    duplicates += resent
                    routed = self.router.route(batch)
            for r in routed.routes:
                if not self._by_name[r.sink].fits(r.batch):
                    self.telemetry.refused("backpressure")
                    raise Backpressure(f"exporter {r.sink} queue is full")
            for r in routed.routes:
                self._by_name[r.sink].enqueue(r.batch, checked=True)
            reasons.update(routed.dropped)
            dropped = sum(reasons.values())
            if self.dedup is not None:
                if keys is not None and identified is not None:
                    self.dedup.remember(_delivered_keys(routed, keys, identified))
                elif digest is not None:
                    self.dedup.remember_request(digest, Answer(dropped, dict(reasons)))
        self.router.record(routed)
        if duplicates:
            self.telemetry.dropped(self.signal.value, duplicates, DUPLICATE)
        if old:
            self.telemetry.dropped(self.signal.value, old, OLDER_THAN_RETENTION)
        for reason, n in routed.dropped.items():
            self.telemetry.dropped(self.signal.value, n, reason)
        self.telemetry.queued(self.signal.value, batch.rows - sum(routed.dropped.values()))
        return Accepted(accepted=rows_in, dropped=dropped, reasons=reasons)

    def _replay(self, digest: str, rows: int) -> Accepted | None:
        """The first answer again for a request already queued within the window (nothing is queued twice)."""
        answer = self.dedup.answer(digest) if self.dedup is not None else None
        if answer is None:
            return None
        self.telemetry.dropped(self.signal.value, rows - answer.dropped, DUPLICATE)
        return Accepted(accepted=rows, dropped=answer.dropped, reasons=dict(answer.reasons))

    def _span_keys(self, batch: Batch) -> tuple[Keys | None, Mask | None]:
        """The spans' identities and which rows have one; (None, None) for other signals or without dedup."""
        if self.dedup is None or batch.signal is not Signal.TRACES:
            return None, None
        return span_keys(batch.table)


def _keep(batch: Batch, keys: Keys, identified: Mask, keep_identified: Mask) -> tuple[Batch, Keys, Mask, int]:
    """The arguments without the identified rows ``keep_identified`` rejects, and how many those were."""
    dropped = int(len(keep_identified) - np.count_nonzero(keep_identified))
    if dropped == 0:
        return batch, keys, identified, 0
    keep = np.ones(len(keys), np.bool_)
    keep[identified] = keep_identified
    return batch.replace(batch.table.filter(pa.array(keep))), keys[keep], identified[keep], dropped


def _delivered_keys(routed: Routed, keys: Keys, identified: Mask) -> Keys:
    """Identities of the rows some sink received (rows the router dropped are not remembered)."""
    if not routed.dropped:
        return keys[identified]
    parts = [k[ok] for k, ok in (span_keys(r.batch.table) for r in routed.routes)]
    return np.concatenate(parts) if parts else keys[:0]


class FanOut:
    """The consumer a receiver sees for one signal: every pipeline that receiver feeds."""

    def __init__(self, pipelines: list[Pipeline]) -> None:
        self.pipelines = pipelines

    def consume(self, batch: Batch) -> Accepted:
        """Hand the batch to each pipeline; the first refusal is raised."""
        if len(self.pipelines) == 1:
            return self.pipelines[0].consume(batch)
        accepted = dropped = 0
        reasons: dict[str, int] = {}
        for p in self.pipelines:
            r = p.consume(batch)
            accepted, dropped = max(accepted, r.accepted), dropped + r.dropped
            for reason, n in r.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return Accepted(accepted, dropped, reasons)


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

    def _start(self) -> None:
        svc = self.config.service
        if svc.data_dir.is_dir():
            self.route_log = RouteLog(svc.data_dir / "audit" / "routes.jsonl")
        else:
            log.warning("data_dir %s does not exist: routing decisions are counted but not logged to a file",
                        svc.data_dir)
        counters = route_counter(self.telemetry.registry)
        for name, reason in self.config.unminimised().items():
            log.warning("pipeline %s runs without minimisation: %s", name, reason)
        for pname, pcfg in svc.pipelines.items():
            signal = self.config.pipeline_signal(pname)
            outputs = []
            retention: dict[str, dt.timedelta | None] = {}
            for ename in pcfg.exporters:
                retention[ename] = sink_retention(self.config.component("exporters", ename).config, signal)
                if ename not in self.exporters:
                    spec = self.config.component("exporters", ename)
                    qcfg = queue_config(spec.config)
                    qe = QueuedExporter(
                        ename,
                        self._create("exporters", ename),
                        self.telemetry.component(ename),
                        QueueSettings.of(qcfg),
                        buffer=open_buffer(ename, qcfg, svc.data_dir),
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
            self.pipelines[pname] = Pipeline(
                pname, signal, procs, outputs, ptel, router, retention=retention, dedup=dedup_config(pcfg)
            )
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
