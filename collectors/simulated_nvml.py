"""A SIMULATED stand-in for the pynvml module: fake GPUs with deterministic load, fault and XID injection.

Used by the tests and by ``sovtel demo`` (``nvml: {simulated: true}``); ``sovtel run`` never uses it.
Errors are pynvml's own ``NVMLError`` classes, so code written against pynvml sees the real types.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pynvml

SIMULATED_MARK = "SIMULATED"
# NVML reports "no instance" ids as 0xFFFFFFFF.
NO_INSTANCE = 0xFFFFFFFF
_MIB = 1024 * 1024

# The pynvml functions this module implements: fault injection accepts exactly these names.
FUNCTIONS: frozenset[str] = frozenset(
    {
        "nvmlInit",
        "nvmlShutdown",
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetEncoderUtilization",
        "nvmlDeviceGetDecoderUtilization",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetFieldValues",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetClockInfo",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRetiredPages",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetPcieReplayCounter",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
        "nvmlDeviceGetGpuInstanceId",
        "nvmlDeviceRegisterEvents",
        "nvmlEventSetCreate",
        "nvmlEventSetWait",
        "nvmlEventSetFree",
    }
)


@dataclass(frozen=True)
class SimulatedProcess:
    """A process holding GPU memory on a simulated device."""

    pid: int
    memory_bytes: int


@dataclass(frozen=True)
class SimulatedDevice:
    """One fake GPU. Its name must say SIMULATED, so it can never pass for real hardware."""

    name: str = "NVIDIA H100 80GB HBM3 (SIMULATED)"
    memory_total_bytes: int = 80 * 1024 * _MIB
    power_limit_w: float = 700.0
    idle_power_w: float = 70.0
    sm_clock_max_mhz: int = 1980
    memory_clock_mhz: int = 2619
    # Load curve: utilisation = 0.55 + 0.35 * sin(2π t / period_s + phase), always within [0.2, 0.9].
    period_s: float = 300.0
    phase: float = 0.0
    mig_capable: bool = True
    mig_instances: int = 0
    processes: tuple[SimulatedProcess, ...] = (SimulatedProcess(4242, 30 * 1024 * _MIB),)
    # Functions that answer NVMLError_NotSupported on this device (as consumer GPUs do for ECC).
    not_supported: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if SIMULATED_MARK not in self.name:
            raise ValueError(f"a simulated device name must contain {SIMULATED_MARK!r}: {self.name!r}")
        unknown = self.not_supported - FUNCTIONS
        if unknown:
            raise ValueError(f"not_supported names unknown functions: {', '.join(sorted(unknown))}")
        if not 0 <= self.mig_instances <= 7:
            raise ValueError("mig_instances must be between 0 and 7")


def default_devices(count: int = 2) -> list[SimulatedDevice]:
    """``count`` simulated H100s whose load curves are out of phase, so panels show distinct lines."""
    return [SimulatedDevice(phase=i * 2.1, period_s=240.0 + 60.0 * i) for i in range(count)]


@dataclass(frozen=True)
class SimulatedHandle:
    """A device handle: a GPU index and, for a MIG instance, its index on that GPU."""

    index: int
    mig_index: int | None = None


@dataclass(frozen=True)
class SimulatedUtilization:
    """Mirrors ``c_nvmlUtilization_t``: percent of time busy (gpu) and memory controller busy."""

    gpu: int
    memory: int


@dataclass(frozen=True)
class SimulatedMemory:
    """Mirrors ``c_nvmlMemory_t`` (bytes)."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class SimulatedProcessInfo:
    """Mirrors ``c_nvmlProcessInfo_t``."""

    pid: int
    usedGpuMemory: int  # noqa: N815 - pynvml's field name
    gpuInstanceId: int = NO_INSTANCE  # noqa: N815
    computeInstanceId: int = NO_INSTANCE  # noqa: N815


@dataclass(frozen=True)
class SimulatedValue:
    """Mirrors the ``c_nvmlValue_t`` union (only the members the simulator fills)."""

    uiVal: int = 0  # noqa: N815
    ullVal: int = 0  # noqa: N815
    dVal: float = 0.0  # noqa: N815


@dataclass(frozen=True)
class SimulatedFieldValue:
    """Mirrors ``c_nvmlFieldValue_t``: a per-field return code and value."""

    fieldId: int  # noqa: N815
    nvmlReturn: int  # noqa: N815
    valueType: int  # noqa: N815
    value: SimulatedValue


@dataclass(frozen=True)
class SimulatedEventData:
    """Mirrors ``c_nvmlEventData_t``."""

    device: SimulatedHandle
    eventType: int  # noqa: N815
    eventData: int  # noqa: N815
    gpuInstanceId: int = NO_INSTANCE  # noqa: N815
    computeInstanceId: int = NO_INSTANCE  # noqa: N815


@dataclass
class SimulatedEventSet:
    """What ``nvmlEventSetCreate`` returns: the devices registered and their event mask."""

    devices: dict[int, int] = field(default_factory=dict)
    freed: bool = False


@dataclass
class _Fault:
    error: int
    remaining: int | None  # None: until cleared


@dataclass
class _Counters:
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    retired_single_bit: int = 0
    retired_double_bit: int = 0
    remapped_corrected: int = 0
    remapped_uncorrected: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    pcie_replays: int = 0


class SimulatedNVML:
    """The fake NVML library. Call its methods exactly as the ``pynvml`` module functions.

    Every value is a deterministic function of ``clock()`` (default ``time.time``), so a test that
    injects a clock gets reproducible readings. Thread-safe: the collector polls and waits for
    events on different threads.
    """

    simulated = True

    def __init__(
        self,
        devices: Sequence[SimulatedDevice] | None = None,
        *,
        driver_loaded: bool = True,
        clock: Callable[[], float] = time.time,
        driver_version: str = "565.57.01-SIMULATED",
    ) -> None:
        self.devices: list[SimulatedDevice] = list(default_devices() if devices is None else devices)
        self.driver_loaded = driver_loaded
        self.clock = clock
        self.driver_version = driver_version
        self._boot = clock()
        self._init_count = 0
        self._faults: dict[tuple[int | None, str], _Fault] = {}
        self._lost: set[int] = set()
        self._counters = [_Counters() for _ in self.devices]
        self._xids: deque[tuple[int, int]] = deque()
        self._cond = threading.Condition()
        self.calls: dict[str, int] = {}

    # ----- fault and event injection (the test and demo API) -----

    def inject_fault(self, device: int | None, function: str, error: int = pynvml.NVML_ERROR_UNKNOWN,
                     count: int | None = None) -> None:
        """Make ``function`` raise ``NVMLError(error)`` on ``device`` (None: every device).

        The fault fires ``count`` times, or until ``clear_faults`` when ``count`` is None.
        """
        if function not in FUNCTIONS:
            raise ValueError(f"{function!r} is not a function of the simulated NVML")
        if device is not None and not 0 <= device < len(self.devices):
            raise ValueError(f"no simulated device {device}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        with self._cond:
            self._faults[(device, function)] = _Fault(error, count)

    def clear_faults(self) -> None:
        """Remove every injected fault and bring lost devices back."""
        with self._cond:
            self._faults.clear()
            self._lost.clear()

    def lose_device(self, device: int) -> None:
        """Make every call on ``device`` raise ``NVMLError_GpuIsLost`` (the GPU fell off the bus)."""
        with self._cond:
            self._lost.add(device)

    def inject_xid(self, device: int, xid: int) -> None:
        """Queue an XID critical error event on ``device`` for ``nvmlEventSetWait``."""
        if not 0 <= device < len(self.devices):
            raise ValueError(f"no simulated device {device}")
        with self._cond:
            self._xids.append((device, xid))
            self._cond.notify_all()

    def inject_ecc(self, device: int, corrected: int = 0, uncorrected: int = 0) -> None:
        """Add ECC errors to a device's volatile counters (uncorrected ones also retire a page)."""
        with self._cond:
            c = self._counters[device]
            c.ecc_corrected += corrected
            c.ecc_uncorrected += uncorrected
            c.retired_double_bit += 1 if uncorrected else 0
            c.remapped_corrected += corrected // 10
            c.remapped_uncorrected += uncorrected
            c.remap_pending = c.remap_pending or bool(uncorrected)

    def inject_pcie_replays(self, device: int, n: int) -> None:
        """Add PCIe replays to a device's counter."""
        with self._cond:
            self._counters[device].pcie_replays += n

    # ----- helpers -----

    def _enter(self, function: str, handle: SimulatedHandle | None = None) -> SimulatedDevice | None:
        """Count the call, enforce init, apply lost devices and injected faults; return the device."""
        with self._cond:
            self.calls[function] = self.calls.get(function, 0) + 1
            if function != "nvmlInit" and self._init_count <= 0:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
            index = handle.index if handle is not None else None
            if index is not None and not 0 <= index < len(self.devices):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if index is not None and index in self._lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            for key in ((index, function), (None, function)):
                fault = self._faults.get(key)
                if fault is not None:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            del self._faults[key]
                    raise pynvml.NVMLError(fault.error)
            if index is None:
                return None
            dev = self.devices[index]
            if function in dev.not_supported:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return dev

    def _device(self, function: str, handle: SimulatedHandle) -> SimulatedDevice:
        dev = self._enter(function, handle)
        if dev is None:  # unreachable: a handle always names a device
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return dev

    def utilization(self, index: int) -> float:
        """The device's load (0.2 to 0.9) now: the curve every reading derives from."""
        d = self.devices[index]
        return 0.55 + 0.35 * math.sin(2 * math.pi * self.clock() / d.period_s + d.phase)

    def _energy_j(self, index: int) -> float:
        # Closed-form integral of the power curve since the simulator started: exact and monotonic.
        d = self.devices[index]
        w = 2 * math.pi / d.period_s
        t0, t1 = self._boot, self.clock()
        util_integral = 0.55 * (t1 - t0) - 0.35 / w * (math.cos(w * t1 + d.phase) - math.cos(w * t0 + d.phase))
        return d.idle_power_w * (t1 - t0) + (d.power_limit_w - d.idle_power_w) * util_integral

    def _memory_used(self, index: int) -> int:
        d = self.devices[index]
        return int(d.memory_total_bytes * (0.25 + 0.6 * self.utilization(index)))

    # ----- the pynvml functions -----

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        """Initialise; raises NVMLError_LibraryNotFound when the driver is absent."""
        self._enter("nvmlInit")
        with self._cond:
            if not self.driver_loaded:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
            self._init_count += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        """Release one initialisation; waiters in nvmlEventSetWait are woken."""
        self._enter("nvmlShutdown")
        with self._cond:
            self._init_count -= 1
            self._cond.notify_all()

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        """The (simulated) driver version."""
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        """Number of simulated GPUs."""
        self._enter("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimulatedHandle:  # noqa: N802
        """The handle of GPU ``index``."""
        handle = SimulatedHandle(index)
        self._enter("nvmlDeviceGetHandleByIndex", handle)
        return handle

    def nvmlDeviceGetName(self, handle: SimulatedHandle) -> str:  # noqa: N802
        """Product name (always contains SIMULATED)."""
        dev = self._device("nvmlDeviceGetName", handle)
        if handle.mig_index is not None:
            return f"{dev.name} MIG 1g.10gb"
        return dev.name

    def nvmlDeviceGetUUID(self, handle: SimulatedHandle) -> str:  # noqa: N802
        """A stable UUID; MIG instances get ``MIG-`` ids."""
        self._device("nvmlDeviceGetUUID", handle)
        base = f"{handle.index:08x}-5111-4a7e-8000-00000000{handle.index:04x}"
        if handle.mig_index is not None:
            return f"MIG-{base[:-4]}{handle.mig_index:04x}"
        return f"GPU-{base}"

    def nvmlDeviceGetUtilizationRates(self, handle: SimulatedHandle) -> SimulatedUtilization:  # noqa: N802
        """GPU and memory-controller busy percentages."""
        self._device("nvmlDeviceGetUtilizationRates", handle)
        u = self.utilization(handle.index)
        return SimulatedUtilization(gpu=round(100 * u), memory=round(60 * u))

    def nvmlDeviceGetEncoderUtilization(self, handle: SimulatedHandle) -> list[int]:  # noqa: N802
        """[encoder percent, sampling period µs]."""
        self._device("nvmlDeviceGetEncoderUtilization", handle)
        return [round(10 * self.utilization(handle.index)), 167_000]

    def nvmlDeviceGetDecoderUtilization(self, handle: SimulatedHandle) -> list[int]:  # noqa: N802
        """[decoder percent, sampling period µs]."""
        self._device("nvmlDeviceGetDecoderUtilization", handle)
        return [round(20 * self.utilization(handle.index)), 167_000]

    def nvmlDeviceGetMemoryInfo(self, handle: SimulatedHandle, version: int | None = None) -> SimulatedMemory:  # noqa: N802
        """Framebuffer total/free/used bytes (a MIG instance reports its slice)."""
        dev = self._device("nvmlDeviceGetMemoryInfo", handle)
        if handle.mig_index is not None:
            total = dev.memory_total_bytes // 8
            used = int(total * 0.5)
            return SimulatedMemory(total, total - used, used)
        used = self._memory_used(handle.index)
        return SimulatedMemory(dev.memory_total_bytes, dev.memory_total_bytes - used, used)

    def nvmlDeviceGetTemperature(self, handle: SimulatedHandle, sensor: int) -> int:  # noqa: N802
        """GPU die temperature in °C."""
        self._device("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return round(32 + 48 * self.utilization(handle.index))

    def nvmlDeviceGetFieldValues(self, handle: SimulatedHandle, field_ids: Sequence[int]) -> list[SimulatedFieldValue]:  # noqa: N802
        """Field values; only NVML_FI_DEV_MEMORY_TEMP is known, others answer NOT_SUPPORTED per field."""
        self._device("nvmlDeviceGetFieldValues", handle)
        out = []
        for fid in field_ids:
            if fid == pynvml.NVML_FI_DEV_MEMORY_TEMP:
                temp = round(38 + 45 * self.utilization(handle.index))
                out.append(SimulatedFieldValue(fid, pynvml.NVML_SUCCESS, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
                                               SimulatedValue(uiVal=temp)))
            else:
                out.append(SimulatedFieldValue(fid, pynvml.NVML_ERROR_NOT_SUPPORTED, 0, SimulatedValue()))
        return out

    def nvmlDeviceGetPowerUsage(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """Power draw in milliwatts."""
        dev = self._device("nvmlDeviceGetPowerUsage", handle)
        watts = dev.idle_power_w + (dev.power_limit_w - dev.idle_power_w) * self.utilization(handle.index)
        return round(watts * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """Enforced power limit in milliwatts."""
        dev = self._device("nvmlDeviceGetEnforcedPowerLimit", handle)
        return round(dev.power_limit_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """Energy since the simulator started, in millijoules (monotonic)."""
        self._device("nvmlDeviceGetTotalEnergyConsumption", handle)
        return int(self._energy_j(handle.index) * 1000)

    def nvmlDeviceGetClockInfo(self, handle: SimulatedHandle, clock_type: int) -> int:  # noqa: N802
        """SM or memory clock in MHz."""
        dev = self._device("nvmlDeviceGetClockInfo", handle)
        if clock_type == pynvml.NVML_CLOCK_SM:
            return round(dev.sm_clock_max_mhz * (0.6 + 0.4 * self.utilization(handle.index)))
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return dev.memory_clock_mhz
        raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """Bitmask of why clocks are held down: idle when lightly loaded, power cap when busy."""
        self._device("nvmlDeviceGetCurrentClocksEventReasons", handle)
        u = self.utilization(handle.index)
        if u > 0.85:
            return int(pynvml.nvmlClocksEventReasonSwPowerCap)
        if u < 0.25:
            return int(pynvml.nvmlClocksEventReasonGpuIdle)
        return int(pynvml.nvmlClocksEventReasonNone)

    def nvmlDeviceGetTotalEccErrors(self, handle: SimulatedHandle, error_type: int, counter_type: int) -> int:  # noqa: N802
        """Volatile or aggregate ECC error count of one type."""
        self._device("nvmlDeviceGetTotalEccErrors", handle)
        c = self._counters[handle.index]
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return c.ecc_corrected
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return c.ecc_uncorrected
        raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetRetiredPages(self, handle: SimulatedHandle, cause: int) -> list[int]:  # noqa: N802
        """Addresses of pages retired for ``cause``."""
        self._device("nvmlDeviceGetRetiredPages", handle)
        c = self._counters[handle.index]
        n = c.retired_single_bit if cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS \
            else c.retired_double_bit
        return [0x1000 * (i + 1) for i in range(n)]

    def nvmlDeviceGetRemappedRows(self, handle: SimulatedHandle) -> tuple[int, int, int, int]:  # noqa: N802
        """(corrected rows, uncorrected rows, remap pending, remap failure)."""
        self._device("nvmlDeviceGetRemappedRows", handle)
        c = self._counters[handle.index]
        return c.remapped_corrected, c.remapped_uncorrected, int(c.remap_pending), int(c.remap_failure)

    def nvmlDeviceGetPcieReplayCounter(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """PCIe replays since the driver loaded."""
        self._device("nvmlDeviceGetPcieReplayCounter", handle)
        return self._counters[handle.index].pcie_replays

    def nvmlDeviceGetComputeRunningProcesses(self, handle: SimulatedHandle) -> list[SimulatedProcessInfo]:  # noqa: N802
        """Compute processes and the GPU memory each holds."""
        dev = self._device("nvmlDeviceGetComputeRunningProcesses", handle)
        return [SimulatedProcessInfo(p.pid, p.memory_bytes) for p in dev.processes]

    def nvmlDeviceGetMigMode(self, handle: SimulatedHandle) -> list[int]:  # noqa: N802
        """[current, pending] MIG mode; NOT_SUPPORTED on GPUs without MIG."""
        dev = self._device("nvmlDeviceGetMigMode", handle)
        if not dev.mig_capable:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = int(dev.mig_instances > 0)
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """How many MIG devices the GPU can hold."""
        dev = self._device("nvmlDeviceGetMaxMigDeviceCount", handle)
        if not dev.mig_capable:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: SimulatedHandle, index: int) -> SimulatedHandle:  # noqa: N802
        """The handle of MIG device ``index``; NOT_FOUND past the configured instances."""
        dev = self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if index >= dev.mig_instances:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return SimulatedHandle(handle.index, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: SimulatedHandle) -> int:  # noqa: N802
        """The GPU instance id of a MIG device handle."""
        self._device("nvmlDeviceGetGpuInstanceId", handle)
        if handle.mig_index is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return handle.mig_index + 1

    def nvmlEventSetCreate(self) -> SimulatedEventSet:  # noqa: N802
        """A new, empty event set."""
        self._enter("nvmlEventSetCreate")
        return SimulatedEventSet()

    def nvmlDeviceRegisterEvents(self, handle: SimulatedHandle, event_types: int, event_set: SimulatedEventSet) -> None:  # noqa: N802
        """Register ``event_types`` of a device with ``event_set``."""
        self._device("nvmlDeviceRegisterEvents", handle)
        with self._cond:
            event_set.devices[handle.index] = event_set.devices.get(handle.index, 0) | int(event_types)

    def nvmlEventSetWait(self, event_set: SimulatedEventSet, timeout_ms: int) -> SimulatedEventData:  # noqa: N802
        """The next XID event of a registered device, or NVMLError_Timeout after ``timeout_ms``."""
        self._enter("nvmlEventSetWait")
        deadline = time.monotonic() + timeout_ms / 1000.0
        with self._cond:
            while True:
                if self._init_count <= 0 or event_set.freed:
                    raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
                for i, (device, xid) in enumerate(self._xids):
                    mask = event_set.devices.get(device, 0)
                    if mask & pynvml.nvmlEventTypeXidCriticalError:
                        del self._xids[i]
                        return SimulatedEventData(SimulatedHandle(device), pynvml.nvmlEventTypeXidCriticalError, xid)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
                self._cond.wait(remaining)

    def nvmlEventSetFree(self, event_set: SimulatedEventSet) -> None:  # noqa: N802
        """Free an event set (waiters are woken and see Uninitialized)."""
        self._enter("nvmlEventSetFree")
        with self._cond:
            event_set.freed = True
            self._cond.notify_all()

    def __getattr__(self, name: str) -> Any:
        # Constants (NVML_CLOCK_SM …) come from pynvml itself, so callers can treat this as the module.
        if name.startswith(("NVML_", "nvmlClocks", "nvmlEventType")):
            return getattr(pynvml, name)
        raise AttributeError(name)
