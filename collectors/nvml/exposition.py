"""The last NVML poll on /metrics: OpenTelemetry-style names, DCGM-exporter names, or both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collectors.nvml.catalogue import DCGM_HELP, METRICS
from collectors.nvml.config import Config
from collectors.nvml.readers import Device, Sample, xid_samples
from sovtel.component import ComponentContext


class NvmlReceiver(Protocol):
    """What the exposition reads of the receiver: its last poll, its devices and its reading counters."""

    ctx: ComponentContext
    cfg: Config
    simulated: bool
    snapshot: Snapshot
    devices: list[Device]
    not_supported: dict[tuple[str, str], int]
    errors: dict[tuple[str, str, str], int]


def label_name(key: str) -> str:
    """An attribute key as a Prometheus label name (dots are not allowed there)."""
    return key.replace(".", "_")


@dataclass
class Snapshot:
    """The last poll, as the Prometheus collector exposes it."""

    up: bool = False
    devices: int = 0
    samples: list[tuple[Device, Sample]] = field(default_factory=list)


class GpuPrometheusCollector(Collector):
    """Exposes the last poll on the pipeline's registry; a vanished device or process leaves no stale series."""

    def __init__(self, receiver: NvmlReceiver) -> None:
        self.receiver = receiver

    def describe(self) -> list[Metric]:
        # Describing nothing keeps registration from running a poll-time collect.
        return []

    def collect(self) -> Iterator[Metric]:
        """Build the families from the latest snapshot (called on scrape)."""
        r = self.receiver
        snap = r.snapshot
        up = GaugeMetricFamily("gpu_up", "1 when NVML answers and at least one GPU was read in the last poll.")
        up.add_metric([], 1.0 if snap.up else 0.0)
        yield up
        count = GaugeMetricFamily("sovtel_gpu_devices", "GPUs NVML reports on this node.", labels=["component"])
        count.add_metric([r.ctx.name], float(snap.devices))
        yield count
        yield from reading_counters(r.ctx.name, r.not_supported, r.errors)
        names = r.cfg.prometheus_names
        if names in ("otel", "both"):
            yield from self._otel(snap, r)
        if names in ("dcgm", "both"):
            yield from self._dcgm(snap, r)

    def _otel(self, snap: Snapshot, r: NvmlReceiver) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        # XID counts are read live: an XID shows on the next scrape, not the next poll.
        live = [(dev, s) for dev in list(r.devices) for s in xid_samples(dev)]
        for dev, s in [*snap.samples, *live]:
            m = METRICS[s.metric]
            fam = families.get(m.prometheus)
            if fam is None:
                cls = CounterMetricFamily if m.monotonic else GaugeMetricFamily
                fam = cls(m.prometheus, m.description, unit="")
                families[m.prometheus] = fam
            labels = {"node": r.ctx.node, "gpu": str(dev.index), "uuid": dev.uuid, "name": dev.name,
                      "simulated": "true" if r.simulated else "false"}
            labels.update((label_name(k), v) for k, v in s.attributes)
            fam.add_sample(m.prometheus + ("_total" if m.monotonic else ""), labels, s.value)
        yield from families.values()

    def _dcgm(self, snap: Snapshot, r: NvmlReceiver) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def labels(dev: Device) -> dict[str, str]:
            return {"gpu": str(dev.index), "UUID": dev.uuid, "device": f"nvidia{dev.index}", "modelName": dev.name,
                    "Hostname": r.ctx.node, "simulated": "true" if r.simulated else "false"}

        def add(name: str, dev: Device, value: float) -> None:
            fam = families.get(name)
            if fam is None:
                kind, help_text = DCGM_HELP[name]
                # dcgm-exporter's counters have no _total suffix; prometheus-client would add one to a
                # counter family, so they are exposed untyped to keep DCGM's names exactly.
                fam = Metric(name, help_text, "unknown" if kind == "counter" else "gauge")
                families[name] = fam
            fam.add_sample(name, labels(dev), value)

        seen: set[int] = set()
        for dev, s in snap.samples:
            if s.dcgm is not None:
                add(s.dcgm, dev, s.value if s.dcgm_value is None else s.dcgm_value)
            if dev.index not in seen:
                seen.add(dev.index)
                add("DCGM_FI_DEV_XID_ERRORS", dev, float(dev.last_xid))
        yield from families.values()


def reading_counters(component: str, not_supported: dict[tuple[str, str], int],
                     errors: dict[tuple[str, str, str], int]) -> Iterator[Metric]:
    """Counters of skipped (not supported) and failed NVML readings."""
    ns = CounterMetricFamily("sovtel_nvml_not_supported", "Readings skipped because the GPU does not support "
                             "them.", labels=["component", "gpu", "reading"])
    for (gpu, reading), n in sorted(not_supported.items()):
        ns.add_metric([component, gpu, reading], float(n))
    yield ns
    err = CounterMetricFamily("sovtel_nvml_errors", "NVML readings that failed, by error.",
                              labels=["component", "gpu", "reading", "error"])
    for (gpu, reading, kind), n in sorted(errors.items()):
        err.add_metric([component, gpu, reading, kind], float(n))
    yield err
