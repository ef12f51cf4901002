"""The NVML readings: one reader per group of NVML calls, turning a device handle into samples.

Each reader fails alone (the receiver counts and skips it); ``xid_samples`` turns a device's XID
event counts into samples too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

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


def as_text(value: Any) -> str:
    """A name or UUID from NVML as text."""
    # Older pynvml builds return bytes for names and UUIDs.
    return value.decode() if isinstance(value, bytes) else str(value)


def xid_samples(dev: Device) -> list[Sample]:
    """The device's cumulative XID counts as hw.errors samples (error.type=xid, hw.gpu.xid=code)."""
    return [Sample("hw.errors", float(n), (("error.type", "xid"), ("hw.gpu.xid", str(xid))))
            for xid, n in sorted(dev.xids.items())]

