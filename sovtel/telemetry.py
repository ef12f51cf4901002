"""Self-telemetry: received / queued / sent / dropped-by-reason counters per component, on prometheus-client.

The words follow the OpenTelemetry Collector's: *received* counts records a component accepted;
*queued* counts records a pipeline placed in its exporters' queues (the point where a receiver may
acknowledge); *sent* counts only records an exporter handed on successfully to its destination
(rows the store accepted), so ``sovtel_sent_records`` is what reached storage, not what was queued.
Every pipeline owns a registry (never the global one), so tests and several pipelines in one
process do not see each other's numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Telemetry:
    """The counters of one pipeline, and the /metrics endpoint that serves them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["component", "signal"]
        self.received = Counter(
            "sovtel_received_records", "Records a component accepted.", labels, registry=self.registry
        )
        self.queued = Counter(
            "sovtel_queued_records",
            "Records a pipeline placed in its exporters' queues (once each, however many exporters take it).",
            labels,
            registry=self.registry,
        )
        self.sent = Counter(
            "sovtel_sent_records", "Records an exporter's destination accepted.", labels, registry=self.registry
        )
        self.dropped = Counter(
            "sovtel_dropped_records",
            "Records a component dropped, by reason.",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.removed = Counter(
            "sovtel_removed_values",
            "Attribute values or content fields a processor removed from records it kept, by reason.",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.refused = Counter(
            "sovtel_refused_requests",
            "Requests a receiver refused, by reason (bad input, back-pressure, auth).",
            ["component", "reason"],
            registry=self.registry,
        )
        self.queue_rows = Gauge(
            "sovtel_queue_records", "Records waiting in an exporter's queue.", ["component"], registry=self.registry
        )
        self.export_failures = Counter(
            "sovtel_export_failures",
            "Failed export attempts, by outcome.",
            ["component", "outcome"],
            registry=self.registry,
        )
        self._server: Any = None
        self._lock = threading.Lock()

    def component(self, name: str) -> ComponentTelemetry:
        """The counters handle for one named component."""
        return ComponentTelemetry(self, name)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (port 0 picks a free one); returns the bound port."""
        with self._lock:
            if self._server is None:
                self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
            return int(self._server.server_port)

    def shutdown(self) -> None:
        """Stop the /metrics server if it runs; idempotent."""
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every current sample as (name, labels, value), for summaries and tests."""
        for metric in self.registry.collect():
            for s in metric.samples:
                yield s.name, dict(s.labels), float(s.value)

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            v for n, lab, v in self.samples() if n == name and all(lab.get(k) == x for k, x in labels.items())
        )


class ComponentTelemetry:
    """Counters bound to one component name."""

    def __init__(self, telemetry: Telemetry, name: str) -> None:
        self.telemetry = telemetry
        self.name = name

    def received(self, signal: str, n: int) -> None:
        """Count records accepted."""
        if n:
            self.telemetry.received.labels(self.name, signal).inc(n)

    def queued(self, signal: str, n: int) -> None:
        """Count records a pipeline placed in its exporters' queues (not yet sent)."""
        if n:
            self.telemetry.queued.labels(self.name, signal).inc(n)

    def sent(self, signal: str, n: int) -> None:
        """Count records an exporter handed on successfully to its destination."""
        if n:
            self.telemetry.sent.labels(self.name, signal).inc(n)

    def dropped(self, signal: str, n: int, reason: str) -> None:
        """Count records dropped, with the reason."""
        if n:
            self.telemetry.dropped.labels(self.name, signal, reason).inc(n)

    def removed(self, signal: str, n: int, reason: str) -> None:
        """Count values removed from records that were kept (e.g. undeclared attributes)."""
        if n:
            self.telemetry.removed.labels(self.name, signal, reason).inc(n)

    def refused(self, reason: str) -> None:
        """Count a refused request, with the reason."""
        self.telemetry.refused.labels(self.name, reason).inc()

    def queue_depth(self, rows: int) -> None:
        """Set the number of queued records."""
        self.telemetry.queue_rows.labels(self.name).set(rows)

    def export_failure(self, outcome: str) -> None:
        """Count a failed export attempt."""
        self.telemetry.export_failures.labels(self.name, outcome).inc()
