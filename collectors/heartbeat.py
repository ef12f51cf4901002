"""The collector's heartbeat: its own counters as metric rows, so the store knows each node is alive.

Every ``interval_s`` the receiver emits a METRICS batch with ``sovtel_up = 1`` and a snapshot of the
pipeline's self-telemetry (received / sent / dropped / queue depth). Migration 0700 copies these rows
into ``pipeline_health``, which the audit's gap check and the pipeline-health panels read.
"""

from __future__ import annotations

import logging
import threading
import time

from pydantic import Field

from sovtel.component import Backpressure, ComponentConfig, ComponentContext, Consumer, Rejected
from sovtel.records import Batch, Signal, table_from_columns

log = logging.getLogger("sovtel.heartbeat")

# Self-telemetry samples worth keeping in the store (the /metrics endpoint has all of them).
KEPT_PREFIXES = ("sovtel_received_records", "sovtel_queued_records", "sovtel_sent_records", "sovtel_dropped_records",
                 "sovtel_removed_values", "sovtel_refused_requests", "sovtel_queue_records",
                 "sovtel_export_failures")


class Config(ComponentConfig):
    """How often the heartbeat is written."""

    interval_s: float = Field(default=30.0, gt=0, le=3600, description="Seconds between heartbeats.")
    service_name: str = Field(default="sovtel-collector", min_length=1)


class Heartbeat:
    """A receiver that produces rather than receives: one batch of health rows per interval."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def start(self, consumers: dict[Signal, Consumer]) -> None:
        """Start beating into the metrics pipeline."""
        if Signal.METRICS not in consumers:
            raise ValueError(f"{self.ctx.name} must be wired to a metrics pipeline")
        self._consumer = consumers[Signal.METRICS]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.ctx.name}", daemon=True)
        self._thread.start()

    def snapshot(self) -> Batch:
        """The current health rows: sovtel_up plus the kept self-telemetry samples."""
        now = time.time_ns()
        names, kinds, values = ["sovtel_up"], ["gauge"], [1.0]
        attrs: list[list[tuple[str, str]]] = [[]]
        for name, labels, value in self.ctx.telemetry.telemetry.samples():
            if not name.startswith(KEPT_PREFIXES) or name.endswith("_created"):
                continue
            names.append(name)
            kinds.append("gauge" if name == "sovtel_queue_records" else "sum")
            values.append(value)
            attrs.append(sorted(labels.items()))
        n = len(names)
        table = table_from_columns(Signal.METRICS, {
            "timestamp": [now] * n, "start_timestamp": [now] * n, "service_name": [self.cfg.service_name] * n,
            "node": [self.ctx.node] * n, "metric_name": names, "metric_kind": kinds,
            "is_monotonic": [k == "sum" for k in kinds], "value": values, "attributes": attrs,
        })
        return Batch(Signal.METRICS, table, {"receiver": self.ctx.name})

    def _run(self) -> None:
        while True:
            consumer = self._consumer
            if consumer is not None:
                try:
                    consumer.consume(self.snapshot())
                except (Backpressure, Rejected) as exc:
                    # A missed beat is visible as a gap in the store; the next one tries again.
                    self.ctx.telemetry.refused("heartbeat_not_accepted")
                    log.warning("heartbeat not accepted: %s", exc)
            if self._stop.wait(self.cfg.interval_s):
                return

    def shutdown(self) -> None:
        """Stop beating; idempotent and safe without start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def create(ctx: ComponentContext, config: Config) -> Heartbeat:
    """Build the heartbeat receiver."""
    return Heartbeat(ctx, config)
