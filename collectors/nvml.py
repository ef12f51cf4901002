"""NVML receiver: polls every GPU with pynvml, emits ``hw.gpu.*`` metric rows and serves them on /metrics.

Names follow the OpenTelemetry hardware conventions; ``prometheus_names: dcgm`` (or ``both``) also
exposes the DCGM-exporter names so existing DCGM dashboards keep working. See docs/gpu.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pynvml
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field

from collectors.simulated_nvml import SimulatedNVML, default_devices
from sovtel.component import Backpressure, ComponentConfig, ComponentContext, Consumer, Rejected
from sovtel.records import TIMESTAMP, Batch, Signal, table_from_columns

log = logging.getLogger("sovtel.nvml")

_MIB = 1024.0 * 1024.0
# Throttle (clock event) reasons reported one series each; the names are the NVML constants' suffixes.
THROTTLE_REASONS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", int(pynvml.nvmlClocksEventReasonGpuIdle)),
    ("applications_clocks_setting", int(pynvml.nvmlClocksEventReasonApplicationsClocksSetting)),
    ("sw_power_cap", int(pynvml.nvmlClocksEventReasonSwPowerCap)),
    ("hw_slowdown", int(pynvml.nvmlClocksEventReasonHwSlowdown)),
    ("sync_boost", int(pynvml.nvmlClocksEventReasonSyncBoost)),
    ("sw_thermal_slowdown", int(pynvml.nvmlClocksEventReasonSwThermalSlowdown)),
    ("hw_thermal_slowdown", int(pynvml.nvmlClocksEventReasonHwThermalSlowdown)),
    ("hw_power_brake_slowdown", int(pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown)),
    ("display_clock_setting", int(pynvml.nvmlClocksEventReasonDisplayClockSetting)),
)


class Config(ComponentConfig):
    """NVML poller settings. ``simulated`` is for the demo only: ``sovtel run`` configs leave it false."""

    interval_s: float = Field(default=10.0, gt=0, le=3600, description="Seconds between polls.")
    simulated: bool = Field(default=False, description="Use the SIMULATED fake GPUs instead of the driver.")
    simulated_devices: int = Field(default=2, ge=0, le=16, description="Fake GPUs when simulated.")
    prometheus_names: Literal["otel", "dcgm", "both"] = Field(
        default="otel", description="Prometheus names: OpenTelemetry-derived, DCGM-exporter's, or both."
    )
    xid_events: bool = Field(default=True, description="Watch the NVML event set for XID critical errors.")
    processes: bool = Field(default=True, description="Report GPU memory per compute process.")
    mig: bool = Field(default=True, description="Report MIG mode and per-instance memory.")
    init_retry_s: float = Field(default=60.0, gt=0, description="Seconds between NVML start-up attempts.")
    service_name: str = Field(default="sovtel-nvml", min_length=1)


def validate_config(cfg: Config) -> list[str]:
    """Problems a pydantic model cannot see: simulation settings without simulation."""
    if "simulated_devices" in cfg.model_fields_set and not cfg.simulated:
        return ["simulated_devices only applies with simulated: true"]
    return []


@dataclass(frozen=True)
class MetricDef:
    """One OpenTelemetry metric: unit, kind and its Prometheus name in the OpenTelemetry style."""

    name: str
    unit: str
    kind: Literal["gauge", "sum"]
    monotonic: bool
    prometheus: str
    description: str


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef("hw.gpu.utilization", "1", "gauge", False, "hw_gpu_utilization_ratio",
                  "Fraction of time the GPU spent in a task (hw.gpu.task: general, encoder, decoder)."),
        MetricDef("hw.gpu.memory.controller.utilization", "1", "gauge", False,
                  "hw_gpu_memory_controller_utilization_ratio",
                  "Fraction of time device memory was being read or written."),
        MetricDef("hw.gpu.memory.usage", "By", "sum", False, "hw_gpu_memory_usage_bytes", "GPU memory used."),
        MetricDef("hw.gpu.memory.free", "By", "sum", False, "hw_gpu_memory_free_bytes", "GPU memory free."),
        MetricDef("hw.gpu.memory.limit", "By", "sum", False, "hw_gpu_memory_limit_bytes", "Size of the GPU memory."),
        MetricDef("hw.gpu.memory.utilization", "1", "gauge", False, "hw_gpu_memory_utilization_ratio",
                  "Fraction of GPU memory used."),
        MetricDef("hw.gpu.temperature", "Cel", "gauge", False, "hw_gpu_temperature_celsius", "GPU die temperature."),
        MetricDef("hw.gpu.memory.temperature", "Cel", "gauge", False, "hw_gpu_memory_temperature_celsius",
                  "GPU memory temperature."),
        MetricDef("hw.power", "W", "gauge", False, "hw_power_watts", "Power drawn by the GPU (hw.type=gpu)."),
        MetricDef("hw.gpu.power.limit", "W", "gauge", False, "hw_gpu_power_limit_watts", "Enforced power limit."),
        MetricDef("hw.energy", "J", "sum", True, "hw_energy_joules", "Energy consumed by the GPU (hw.type=gpu)."),
        MetricDef("hw.gpu.clock.sm", "Hz", "gauge", False, "hw_gpu_clock_sm_hertz", "SM clock frequency."),
        MetricDef("hw.gpu.clock.memory", "Hz", "gauge", False, "hw_gpu_clock_memory_hertz", "Memory clock frequency."),
        MetricDef("hw.gpu.throttle", "1", "gauge", False, "hw_gpu_throttle",
                  "1 while a reason (hw.gpu.throttle.reason) holds the clocks down."),
        MetricDef("hw.errors", "{error}", "sum", True, "hw_errors",
                  "GPU errors by error.type: corrected / uncorrected (volatile ECC) and xid (with hw.gpu.xid)."),
        MetricDef("hw.gpu.memory.retired_pages", "{page}", "sum", True, "hw_gpu_memory_retired_pages",
                  "Pages retired, by hw.gpu.retirement.cause."),
        MetricDef("hw.gpu.memory.remapped_rows", "{row}", "sum", True, "hw_gpu_memory_remapped_rows",
                  "Rows remapped, by error.type."),
        MetricDef("hw.gpu.memory.row_remap.pending", "1", "gauge", False, "hw_gpu_memory_row_remap_pending",
                  "1 when a row remap waits for a GPU reset."),
        MetricDef("hw.gpu.memory.row_remap.failure", "1", "gauge", False, "hw_gpu_memory_row_remap_failure",
                  "1 when a row remap failed."),
        MetricDef("hw.gpu.pcie.replays", "{replay}", "sum", True, "hw_gpu_pcie_replays", "PCIe replays."),
        MetricDef("hw.gpu.process.memory.usage", "By", "sum", False, "hw_gpu_process_memory_usage_bytes",
                  "GPU memory held by a compute process (process.pid)."),
        MetricDef("hw.gpu.mig.mode", "1", "gauge", False, "hw_gpu_mig_mode", "1 when MIG mode is enabled."),
        MetricDef("hw.gpu.mig.instances", "{instance}", "sum", False, "hw_gpu_mig_instances", "MIG devices."),
        MetricDef("hw.gpu.mig.memory.usage", "By", "sum", False, "hw_gpu_mig_memory_usage_bytes",
                  "Memory used in a MIG device (hw.gpu.mig.instance)."),
        MetricDef("hw.gpu.mig.memory.limit", "By", "sum", False, "hw_gpu_mig_memory_limit_bytes",
                  "Memory of a MIG device."),
        MetricDef("hw.status", "1", "sum", False, "hw_status", "1 for the GPU's current hw.state (ok, failed)."),
    )
}

# DCGM-exporter help texts for the fields we map (names and units as dcgm-exporter publishes them).
DCGM_HELP: dict[str, tuple[str, str]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("gauge", "GPU utilization (in %)."),
    "DCGM_FI_DEV_ENC_UTIL": ("gauge", "Encoder utilization (in %)."),
    "DCGM_FI_DEV_DEC_UTIL": ("gauge", "Decoder utilization (in %)."),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("gauge", "Memory utilization (in %)."),
    "DCGM_FI_DEV_FB_USED": ("gauge", "Framebuffer memory used (in MiB)."),
    "DCGM_FI_DEV_FB_FREE": ("gauge", "Framebuffer memory free (in MiB)."),
    "DCGM_FI_DEV_FB_TOTAL": ("gauge", "Framebuffer memory total (in MiB)."),
    "DCGM_FI_DEV_GPU_TEMP": ("gauge", "GPU temperature (in C)."),
    "DCGM_FI_DEV_MEMORY_TEMP": ("gauge", "Memory temperature (in C)."),
    "DCGM_FI_DEV_POWER_USAGE": ("gauge", "Power draw (in W)."),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("gauge", "Power management limit (in W)."),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("counter", "Total energy consumption since boot (in mJ)."),
    "DCGM_FI_DEV_SM_CLOCK": ("gauge", "SM clock frequency (in MHz)."),
    "DCGM_FI_DEV_MEM_CLOCK": ("gauge", "Memory clock frequency (in MHz)."),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("gauge", "Current clock throttle reasons (bitmask)."),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("counter", "Total number of single-bit volatile ECC errors."),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("counter", "Total number of double-bit volatile ECC errors."),
    "DCGM_FI_DEV_RETIRED_SBE": ("counter", "Total number of retired pages due to single-bit errors."),
    "DCGM_FI_DEV_RETIRED_DBE": ("counter", "Total number of retired pages due to double-bit errors."),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("counter", "Number of remapped rows for correctable errors."),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("counter", "Number of remapped rows for uncorrectable errors."),
    "DCGM_FI_DEV_ROW_REMAP_PENDING": ("gauge", "Whether remapping of rows is pending."),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": ("gauge", "Whether remapping of rows has failed."),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("counter", "Total number of PCIe retries."),
    "DCGM_FI_DEV_XID_ERRORS": ("gauge", "Value of the last XID error encountered."),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: an OpenTelemetry metric, its extra attributes and, if DCGM has it, the DCGM field."""

    metric: str
    value: float
    attributes: tuple[tuple[str, str], ...] = ()
    dcgm: str | None = None
    dcgm_value: float | None = None


@dataclass
class Device:
    """What the collector knows of one GPU between polls."""

    index: int
    handle: Any
    uuid: str
    name: str
    lost: bool = False
    # Cumulative XID events by code, and the last code seen (DCGM reports the last one as a gauge).
    xids: dict[int, int] = field(default_factory=dict)
    last_xid: int = 0

    def attributes(self, simulated: bool) -> dict[str, str]:
        """The identity attributes every row of this GPU carries."""
        return {
            "hw.id": self.uuid,
            "hw.name": self.name,
            "hw.type": "gpu",
            "hw.vendor": "nvidia",
            "gpu.index": str(self.index),
            "sovtel.simulated": "true" if simulated else "false",
        }


Reader = Callable[[Any, Any], list[Sample]]


def _util(nvml: Any, h: Any) -> list[Sample]:
    u = nvml.nvmlDeviceGetUtilizationRates(h)
    return [
        Sample("hw.gpu.utilization", u.gpu / 100.0, (("hw.gpu.task", "general"),), "DCGM_FI_DEV_GPU_UTIL",
               float(u.gpu)),
        Sample("hw.gpu.memory.controller.utilization", u.memory / 100.0, (), "DCGM_FI_DEV_MEM_COPY_UTIL",
               float(u.memory)),
    ]


def _encoder(nvml: Any, h: Any) -> list[Sample]:
    pct = float(nvml.nvmlDeviceGetEncoderUtilization(h)[0])
    return [Sample("hw.gpu.utilization", pct / 100.0, (("hw.gpu.task", "encoder"),), "DCGM_FI_DEV_ENC_UTIL", pct)]


def _decoder(nvml: Any, h: Any) -> list[Sample]:
    pct = float(nvml.nvmlDeviceGetDecoderUtilization(h)[0])
    return [Sample("hw.gpu.utilization", pct / 100.0, (("hw.gpu.task", "decoder"),), "DCGM_FI_DEV_DEC_UTIL", pct)]


def _memory(nvml: Any, h: Any) -> list[Sample]:
    m = nvml.nvmlDeviceGetMemoryInfo(h)
    total, used, free = float(m.total), float(m.used), float(m.free)
    return [
        Sample("hw.gpu.memory.usage", used, (), "DCGM_FI_DEV_FB_USED", used / _MIB),
        Sample("hw.gpu.memory.free", free, (), "DCGM_FI_DEV_FB_FREE", free / _MIB),
        Sample("hw.gpu.memory.limit", total, (), "DCGM_FI_DEV_FB_TOTAL", total / _MIB),
        Sample("hw.gpu.memory.utilization", used / total if total else 0.0),
    ]


def _temperature(nvml: Any, h: Any) -> list[Sample]:
    t = float(nvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
    return [Sample("hw.gpu.temperature", t, (), "DCGM_FI_DEV_GPU_TEMP", t)]


def _memory_temperature(nvml: Any, h: Any) -> list[Sample]:
    fv = nvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_MEMORY_TEMP])[0]
    if fv.nvmlReturn != pynvml.NVML_SUCCESS:
        raise pynvml.NVMLError(fv.nvmlReturn)
    t = float(fv.value.uiVal)
    return [Sample("hw.gpu.memory.temperature", t, (), "DCGM_FI_DEV_MEMORY_TEMP", t)]


def _power(nvml: Any, h: Any) -> list[Sample]:
    w = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
    return [Sample("hw.power", w, (), "DCGM_FI_DEV_POWER_USAGE", w)]


def _power_limit(nvml: Any, h: Any) -> list[Sample]:
    w = nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
    return [Sample("hw.gpu.power.limit", w, (), "DCGM_FI_DEV_POWER_MGMT_LIMIT", w)]


def _energy(nvml: Any, h: Any) -> list[Sample]:
    mj = float(nvml.nvmlDeviceGetTotalEnergyConsumption(h))
    return [Sample("hw.energy", mj / 1000.0, (), "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", mj)]


def _clock_sm(nvml: Any, h: Any) -> list[Sample]:
    mhz = float(nvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))
    return [Sample("hw.gpu.clock.sm", mhz * 1e6, (), "DCGM_FI_DEV_SM_CLOCK", mhz)]


def _clock_memory(nvml: Any, h: Any) -> list[Sample]:
    mhz = float(nvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM))
    return [Sample("hw.gpu.clock.memory", mhz * 1e6, (), "DCGM_FI_DEV_MEM_CLOCK", mhz)]


def _throttle(nvml: Any, h: Any) -> list[Sample]:
    mask = int(nvml.nvmlDeviceGetCurrentClocksEventReasons(h))
    out = [Sample("hw.gpu.throttle", float(bool(mask & bit)), (("hw.gpu.throttle.reason", name),))
           for name, bit in THROTTLE_REASONS]
    # The bitmask itself rides on the first sample so DCGM mode exposes it once.
    first = out[0]
    out[0] = Sample(first.metric, first.value, first.attributes, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", float(mask))
    return out


def _ecc(error_type: int, label: str, dcgm: str) -> Reader:
    def read(nvml: Any, h: Any) -> list[Sample]:
        n = float(nvml.nvmlDeviceGetTotalEccErrors(h, error_type, pynvml.NVML_VOLATILE_ECC))
        return [Sample("hw.errors", n, (("error.type", label),), dcgm, n)]

    return read


def _retired(nvml: Any, h: Any) -> list[Sample]:
    single = pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
    sbe = float(len(nvml.nvmlDeviceGetRetiredPages(h, single)))
    dbe = float(len(nvml.nvmlDeviceGetRetiredPages(h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)))
    return [
        Sample("hw.gpu.memory.retired_pages", sbe, (("hw.gpu.retirement.cause", "single_bit_ecc"),),
               "DCGM_FI_DEV_RETIRED_SBE", sbe),
        Sample("hw.gpu.memory.retired_pages", dbe, (("hw.gpu.retirement.cause", "double_bit_ecc"),),
               "DCGM_FI_DEV_RETIRED_DBE", dbe),
    ]


def _remapped(nvml: Any, h: Any) -> list[Sample]:
    corr, unc, pending, failure = (float(x) for x in nvml.nvmlDeviceGetRemappedRows(h))
    return [
        Sample("hw.gpu.memory.remapped_rows", corr, (("error.type", "corrected"),),
               "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", corr),
        Sample("hw.gpu.memory.remapped_rows", unc, (("error.type", "uncorrected"),),
               "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", unc),
        Sample("hw.gpu.memory.row_remap.pending", pending, (), "DCGM_FI_DEV_ROW_REMAP_PENDING", pending),
        Sample("hw.gpu.memory.row_remap.failure", failure, (), "DCGM_FI_DEV_ROW_REMAP_FAILURE", failure),
    ]


def _pcie(nvml: Any, h: Any) -> list[Sample]:
    n = float(nvml.nvmlDeviceGetPcieReplayCounter(h))
    return [Sample("hw.gpu.pcie.replays", n, (), "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", n)]


def _processes(nvml: Any, h: Any) -> list[Sample]:
    out = []
    for p in nvml.nvmlDeviceGetComputeRunningProcesses(h):
        used = p.usedGpuMemory
        # NVML reports "not available" (e.g. in containers without the PID namespace) as None.
        if used is None:
            continue
        out.append(Sample("hw.gpu.process.memory.usage", float(used), (("process.pid", str(p.pid)),)))
    return out


def _mig(nvml: Any, h: Any) -> list[Sample]:
    current, _pending = nvml.nvmlDeviceGetMigMode(h)
    out = [Sample("hw.gpu.mig.mode", float(current))]
    if current != pynvml.NVML_DEVICE_MIG_ENABLE:
        return out
    instances = 0
    for i in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(h))):
        try:
            mh = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
        except pynvml.NVMLError_NotFound:
            continue
        instances += 1
        attrs = (("hw.gpu.mig.instance", str(nvml.nvmlDeviceGetGpuInstanceId(mh))),
                 ("hw.gpu.mig.uuid", str(nvml.nvmlDeviceGetUUID(mh))))
        mem = nvml.nvmlDeviceGetMemoryInfo(mh)
        out.append(Sample("hw.gpu.mig.memory.usage", float(mem.used), attrs))
        out.append(Sample("hw.gpu.mig.memory.limit", float(mem.total), attrs))
    out.append(Sample("hw.gpu.mig.instances", float(instances)))
    return out


# Each reader is one group of NVML calls; a failure in one never stops the others.
READERS: dict[str, Reader] = {
    "utilization": _util,
    "encoder": _encoder,
    "decoder": _decoder,
    "memory": _memory,
    "temperature": _temperature,
    "memory_temperature": _memory_temperature,
    "power": _power,
    "power_limit": _power_limit,
    "energy": _energy,
    "clock_sm": _clock_sm,
    "clock_memory": _clock_memory,
    "throttle": _throttle,
    "ecc_corrected": _ecc(pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
    "ecc_uncorrected": _ecc(pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected",
                            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"),
    "retired_pages": _retired,
    "remapped_rows": _remapped,
    "pcie_replay": _pcie,
    "processes": _processes,
    "mig": _mig,
}


def _label(key: str) -> str:
    return key.replace(".", "_")


def _text(value: Any) -> str:
    # Older pynvml builds return bytes for names and UUIDs.
    return value.decode() if isinstance(value, bytes) else str(value)


def xid_samples(dev: Device) -> list[Sample]:
    """The device's cumulative XID counts as hw.errors samples (error.type=xid, hw.gpu.xid=code)."""
    return [Sample("hw.errors", float(n), (("error.type", "xid"), ("hw.gpu.xid", str(xid))))
            for xid, n in sorted(dev.xids.items())]


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
        yield from r.counters_families()
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
            labels.update((_label(k), v) for k, v in s.attributes)
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


class NvmlReceiver:
    """The ``nvml`` receiver: a poll thread and an XID event thread over one NVML library.

    ``start`` never fails for lack of a GPU: without a driver it logs one line, reports
    ``gpu_up 0`` and retries every ``init_retry_s``. Readings that fail on one device, or one
    metric of one device, are counted and skipped; the rest of the poll goes on.
    """

    def __init__(self, ctx: ComponentContext, cfg: Config, nvml: Any | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.cfg = cfg
        # Wall clock for row timestamps; tests pass the simulated NVML's clock to replay hours in seconds.
        self.clock = clock
        if nvml is None:
            nvml = SimulatedNVML(default_devices(cfg.simulated_devices)) if cfg.simulated else pynvml
        self.nvml: Any = nvml
        self.simulated = bool(getattr(nvml, "simulated", False))
        self.snapshot = Snapshot()
        self.devices: list[Device] = []
        self._consumer: Consumer | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._initialised = False
        self._init_logged = False
        self._started = False
        self._start_ns = int(clock() * 1e9)
        self._registered = False
        self._collector = GpuPrometheusCollector(self)
        # (gpu index, reader) → count; a warning is logged once per (gpu, reader, error) until it recovers.
        self.not_supported: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self._warned: set[tuple[str, str, str]] = set()
        self.polls = 0
        self._device_count = 0

    # ----- lifecycle -----

    def start(self, consumers: Mapping[Signal, Consumer]) -> None:
        """Register the /metrics collector and start polling; never raises for a missing GPU or driver."""
        with self._lock:
            if self._started:
                return
            self._consumer = consumers.get(Signal.METRICS)
            self._stop.clear()
            self.ctx.telemetry.telemetry.registry.register(self._collector)
            self._registered = True
            t = threading.Thread(target=self._poll_loop, name=f"nvml-poll-{self.ctx.name}", daemon=True)
            t.start()
            self._threads = [t]
            self._started = True

    def shutdown(self) -> None:
        """Stop both threads, release NVML and unregister from /metrics; idempotent, safe without start."""
        self._stop.set()
        # The poll thread may start the XID thread while we wait, so join until none is left.
        while True:
            with self._lock:
                threads, self._threads = self._threads, []
            if not threads:
                break
            for t in threads:
                t.join(timeout=10.0)
        with self._lock:
            if self._registered:
                self.ctx.telemetry.telemetry.registry.unregister(self._collector)
                self._registered = False
            if self._initialised:
                try:
                    self.nvml.nvmlShutdown()
                except pynvml.NVMLError as exc:
                    log.debug("nvmlShutdown failed: %s", exc)
                self._initialised = False
            self._started = False

    # ----- polling -----

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if not self._initialised and not self.connect():
                self.snapshot = Snapshot()
                self._stop.wait(self.cfg.init_retry_s)
                continue
            started = time.monotonic()
            try:
                self.poll()
            except Exception:  # do not crash after start-up: log it and poll again next time
                log.exception("GPU poll failed")
            self._stop.wait(max(0.0, self.cfg.interval_s - (time.monotonic() - started)))

    def connect(self) -> bool:
        """Start NVML and discover the GPUs; False (gpu_up 0, one log line) when NVML is unavailable."""
        try:
            self.nvml.nvmlInit()
        except pynvml.NVMLError as exc:
            if not self._init_logged:
                log.warning("NVML unavailable on node %s (%s): no GPU metrics, gpu_up=0; retrying every %gs",
                            self.ctx.node, exc, self.cfg.init_retry_s)
                self._init_logged = True
            return False
        self._initialised = True
        try:
            count = int(self.nvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as exc:
            log.warning("NVML started but cannot count GPUs (%s)", exc)
            count = 0
        self.devices = []
        for i in range(count):
            dev = self._discover(i)
            if dev is not None:
                self.devices.append(dev)
        names = ", ".join(f"{d.index}:{d.name}" for d in self.devices) or "none"
        log.info("NVML started on node %s: %d GPU(s) (%s)%s", self.ctx.node, count, names,
                 " [SIMULATED]" if self.simulated else "")
        self._device_count = count
        if count == 0 and not self._init_logged:
            log.warning("NVML found no GPU on node %s: gpu_up=0", self.ctx.node)
            self._init_logged = True
        if self.cfg.xid_events and self.devices:
            t = threading.Thread(target=self._xid_loop, name=f"nvml-xid-{self.ctx.name}", daemon=True)
            t.start()
            with self._lock:
                self._threads.append(t)
        return True

    def _discover(self, index: int) -> Device | None:
        try:
            h = self.nvml.nvmlDeviceGetHandleByIndex(index)
            return Device(index, h, _text(self.nvml.nvmlDeviceGetUUID(h)), _text(self.nvml.nvmlDeviceGetName(h)))
        except pynvml.NVMLError as exc:
            self._count_error(str(index), "discover", exc)
            return None

    def _count_error(self, gpu: str, reader: str, exc: pynvml.NVMLError) -> None:
        kind = type(exc).__name__.removeprefix("NVMLError_")
        key = (gpu, reader, kind)
        self.errors[key] = self.errors.get(key, 0) + 1
        if key not in self._warned:
            self._warned.add(key)
            log.warning("NVML %s failed on GPU %s: %s (skipped; other readings continue)", reader, gpu, exc)

    def _read_device(self, dev: Device) -> list[Sample]:
        samples: list[Sample] = []
        gpu = str(dev.index)
        for name, reader in READERS.items():
            if (name == "processes" and not self.cfg.processes) or (name == "mig" and not self.cfg.mig):
                continue
            try:
                samples.extend(reader(self.nvml, dev.handle))
            except pynvml.NVMLError_NotSupported:
                key = (gpu, name)
                self.not_supported[key] = self.not_supported.get(key, 0) + 1
            except pynvml.NVMLError_GpuIsLost as exc:
                if not dev.lost:
                    log.error("GPU %s (%s) is lost: %s; other GPUs keep being read", gpu, dev.uuid, exc)
                dev.lost = True
                self._count_error(gpu, name, exc)
                break
            except pynvml.NVMLError as exc:
                self._count_error(gpu, name, exc)
            else:
                # Recovered: warn again if it breaks again.
                self._warned = {k for k in self._warned if not (k[0] == gpu and k[1] == name)}
                if dev.lost:
                    log.warning("GPU %s (%s) answers again", gpu, dev.uuid)
                    dev.lost = False
        state_ok = not dev.lost
        samples.append(Sample("hw.status", float(state_ok), (("hw.state", "ok"),)))
        samples.append(Sample("hw.status", float(not state_ok), (("hw.state", "failed"),)))
        return samples

    def poll(self) -> int:
        """Read every GPU once, emit the rows and refresh /metrics; returns the rows emitted."""
        # A GPU that failed discovery at start-up is tried again on each poll.
        known = {d.index for d in self.devices}
        for i in range(self._device_count):
            if i not in known:
                dev = self._discover(i)
                if dev is not None:
                    self.devices.append(dev)
                    self.devices.sort(key=lambda d: d.index)
        now = int(self.clock() * 1e9)
        readings: list[tuple[Device, Sample]] = []
        readable = 0
        for dev in self.devices:
            samples = self._read_device(dev)
            if not dev.lost and len(samples) > 2:
                readable += 1
            readings.extend((dev, s) for s in samples)
        self.snapshot = Snapshot(up=readable > 0, devices=self._device_count, samples=readings)
        self.polls += 1
        # Cumulative XID counts ride along every poll so the stored counter series stays continuous.
        xids = [(dev, s) for dev in self.devices for s in xid_samples(dev)]
        return self._emit(now, readings + xids)

    def _emit(self, now_ns: int, readings: Iterable[tuple[Device, Sample]]) -> int:
        readings = list(readings)
        if self._consumer is None or not readings:
            return 0
        cols: dict[str, list[Any]] = {k: [] for k in (
            "timestamp", "start_timestamp", "metric_name", "metric_kind", "unit", "is_monotonic", "value",
            "attributes")}
        base = {d.index: d.attributes(self.simulated) for d, _ in readings}
        for dev, s in readings:
            m = METRICS[s.metric]
            cols["timestamp"].append(now_ns)
            cols["start_timestamp"].append(self._start_ns if m.kind == "sum" else now_ns)
            cols["metric_name"].append(m.name)
            cols["metric_kind"].append(m.kind)
            cols["unit"].append(m.unit)
            cols["is_monotonic"].append(m.monotonic)
            cols["value"].append(s.value)
            attrs = dict(base[dev.index])
            attrs.update(s.attributes)
            cols["attributes"].append(sorted(attrs.items()))
        n = len(readings)
        cols["service_name"] = [self.cfg.service_name] * n
        cols["node"] = [self.ctx.node] * n
        cols["resource_attributes"] = [[("host.name", self.ctx.node), ("service.name", self.cfg.service_name)]] * n
        cols["timestamp"] = pa.array(cols["timestamp"], type=pa.int64()).cast(TIMESTAMP)
        cols["start_timestamp"] = pa.array(cols["start_timestamp"], type=pa.int64()).cast(TIMESTAMP)
        batch = Batch(Signal.METRICS, table_from_columns(Signal.METRICS, cols), {"receiver": self.ctx.name})
        try:
            self._consumer.consume(batch)
        except Backpressure:
            self.ctx.telemetry.dropped(Signal.METRICS.value, n, "backpressure")
            return 0
        except Rejected as exc:
            log.warning("GPU metrics rejected by the pipeline: %s", exc)
            self.ctx.telemetry.dropped(Signal.METRICS.value, n, "rejected")
            return 0
        return n

    # ----- XID events -----

    def _xid_loop(self) -> None:
        nvml = self.nvml
        try:
            event_set = nvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            self._count_error("all", "xid_events", exc)
            return
        by_uuid: dict[str, Device] = {}
        for dev in list(self.devices):
            try:
                nvml.nvmlDeviceRegisterEvents(dev.handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
                by_uuid[dev.uuid] = dev
            except pynvml.NVMLError_NotSupported:
                key = (str(dev.index), "xid_events")
                self.not_supported[key] = self.not_supported.get(key, 0) + 1
            except pynvml.NVMLError as exc:
                self._count_error(str(dev.index), "xid_events", exc)
        try:
            while not self._stop.is_set() and by_uuid:
                try:
                    event = nvml.nvmlEventSetWait(event_set, 500)
                except pynvml.NVMLError_Timeout:
                    continue
                except pynvml.NVMLError as exc:
                    if self._stop.is_set():
                        break
                    self._count_error("all", "xid_events", exc)
                    self._stop.wait(1.0)
                    continue
                if not event.eventType & pynvml.nvmlEventTypeXidCriticalError:
                    continue
                try:
                    found = by_uuid.get(_text(nvml.nvmlDeviceGetUUID(event.device)))
                except pynvml.NVMLError:
                    found = None
                if found is None:
                    continue
                dev = found
                xid = int(event.eventData)
                dev.xids[xid] = dev.xids.get(xid, 0) + 1
                dev.last_xid = xid
                log.error("XID %d on GPU %d (%s, %s)", xid, dev.index, dev.uuid, dev.name)
                # Emit at once: an XID often precedes the GPU falling off the bus before the next poll.
                sample = Sample("hw.errors", float(dev.xids[xid]), (("error.type", "xid"), ("hw.gpu.xid", str(xid))))
                self._emit(int(self.clock() * 1e9), [(dev, sample)])
        finally:
            try:
                nvml.nvmlEventSetFree(event_set)
            except pynvml.NVMLError:
                log.debug("nvmlEventSetFree failed", exc_info=True)

    # ----- self-telemetry -----

    def counters_families(self) -> Iterator[Metric]:
        """Counters of skipped (not supported) and failed NVML readings."""
        ns = CounterMetricFamily("sovtel_nvml_not_supported", "Readings skipped because the GPU does not support "
                                 "them.", labels=["component", "gpu", "reading"])
        for (gpu, reading), n in sorted(self.not_supported.items()):
            ns.add_metric([self.ctx.name, gpu, reading], float(n))
        yield ns
        err = CounterMetricFamily("sovtel_nvml_errors", "NVML readings that failed, by error.",
                                  labels=["component", "gpu", "reading", "error"])
        for (gpu, reading, kind), n in sorted(self.errors.items()):
            err.add_metric([self.ctx.name, gpu, reading, kind], float(n))
        yield err


def create(ctx: ComponentContext, config: Config) -> NvmlReceiver:
    """Build the NVML receiver (real pynvml unless ``simulated: true``)."""
    return NvmlReceiver(ctx, config)
