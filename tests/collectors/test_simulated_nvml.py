"""Tests for collectors.simulated_nvml: the fake behaves like pynvml, deterministically, with injectable faults."""

from __future__ import annotations

import pynvml
import pytest

from collectors.simulated_nvml import (
    FUNCTIONS,
    SimulatedDevice,
    SimulatedNVML,
    default_devices,
)


class Clock:
    """A settable clock."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def started(**kwargs) -> SimulatedNVML:
    nv = SimulatedNVML(**kwargs)
    nv.nvmlInit()
    return nv


class TestLifecycle:
    @pytest.mark.parametrize("call", [
        lambda nv: nv.nvmlDeviceGetCount(),
        lambda nv: nv.nvmlDeviceGetHandleByIndex(0),
        lambda nv: nv.nvmlSystemGetDriverVersion(),
        lambda nv: nv.nvmlEventSetCreate(),
        lambda nv: nv.nvmlShutdown(),
    ])
    def test_calls_before_init_raise_uninitialized(self, call) -> None:
        """Every function but nvmlInit raises pynvml's NVMLError_Uninitialized before initialisation."""
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            call(SimulatedNVML())

    def test_missing_driver_raises_library_not_found(self) -> None:
        """Without a driver, nvmlInit raises NVMLError_LibraryNotFound with NVML's code 12, like real pynvml."""
        nv = SimulatedNVML(driver_loaded=False)
        with pytest.raises(pynvml.NVMLError_LibraryNotFound) as info:
            nv.nvmlInit()
        assert info.value.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND == 12
        assert isinstance(info.value, pynvml.NVMLError)

    def test_shutdown_uninitialises(self) -> None:
        """After nvmlShutdown the library refuses calls again."""
        nv = started()
        nv.nvmlShutdown()
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            nv.nvmlDeviceGetCount()


class TestDevices:
    def test_every_device_is_named_simulated(self) -> None:
        """Device names say SIMULATED, so a fake can never pass for real hardware."""
        nv = started(devices=default_devices(3))
        names = [nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(i)) for i in range(nv.nvmlDeviceGetCount())]
        assert len(names) == 3 and all("SIMULATED" in n for n in names)

    @pytest.mark.parametrize("kwargs", [
        {"name": "NVIDIA H100 80GB HBM3"},
        {"not_supported": frozenset({"nvmlDeviceGetNoSuchThing"})},
        {"mig_instances": 8},
    ])
    def test_invalid_device_definitions_are_refused(self, kwargs) -> None:
        """A device without the SIMULATED mark, with unknown functions or impossible MIG counts is a ValueError."""
        with pytest.raises(ValueError):
            SimulatedDevice(**kwargs)

    def test_readings_are_a_deterministic_function_of_the_clock(self) -> None:
        """Two simulators on the same clock value report identical readings; another time reads differently."""
        clock = Clock()
        a, b = started(clock=clock), started(clock=clock)

        def read(nv: SimulatedNVML) -> tuple:
            h = nv.nvmlDeviceGetHandleByIndex(1)
            return (nv.nvmlDeviceGetUtilizationRates(h), nv.nvmlDeviceGetPowerUsage(h),
                    nv.nvmlDeviceGetMemoryInfo(h), nv.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))

        first = read(a)
        assert first == read(b)
        clock.t += 37.0
        assert read(a) != first

    def test_readings_stay_within_physical_bounds(self) -> None:
        """Across a whole load period utilisation stays in 20-90 %, power under the limit, memory under total."""
        clock = Clock()
        nv = started(clock=clock)
        h = nv.nvmlDeviceGetHandleByIndex(0)
        limit = nv.nvmlDeviceGetEnforcedPowerLimit(h)
        for _ in range(60):
            clock.t += 5.0
            util = nv.nvmlDeviceGetUtilizationRates(h).gpu
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            assert 20 <= util <= 90
            assert 0 < nv.nvmlDeviceGetPowerUsage(h) <= limit
            assert mem.used + mem.free == mem.total

    def test_energy_counter_integrates_power(self) -> None:
        """The energy counter only grows, by about mean power times elapsed time."""
        clock = Clock()
        nv = started(clock=clock)
        h = nv.nvmlDeviceGetHandleByIndex(0)
        before = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        powers = []
        for _ in range(100):
            clock.t += 0.1
            powers.append(nv.nvmlDeviceGetPowerUsage(h))
        after = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        expected_mj = sum(powers) / len(powers) * 10.0  # mW x s = mJ
        assert after > before
        assert after - before == pytest.approx(expected_mj, rel=0.01)

    def test_mig_instances_and_unsupported_mig(self) -> None:
        """A MIG GPU lists its instances then answers NotFound; a GPU without MIG answers NotSupported."""
        nv = started(devices=[SimulatedDevice(mig_instances=2), SimulatedDevice(mig_capable=False)])
        h0, h1 = nv.nvmlDeviceGetHandleByIndex(0), nv.nvmlDeviceGetHandleByIndex(1)
        assert nv.nvmlDeviceGetMigMode(h0) == [1, 1]
        mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(h0, 1)
        assert nv.nvmlDeviceGetUUID(mig).startswith("MIG-")
        with pytest.raises(pynvml.NVMLError_NotFound):
            nv.nvmlDeviceGetMigDeviceHandleByIndex(h0, 2)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            nv.nvmlDeviceGetMigMode(h1)


class TestFaults:
    @pytest.mark.parametrize(("code", "cls"), [
        (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVMLError_NotSupported),
        (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVMLError_GpuIsLost),
        (pynvml.NVML_ERROR_UNKNOWN, pynvml.NVMLError_Unknown),
        (pynvml.NVML_ERROR_NO_PERMISSION, pynvml.NVMLError_NoPermission),
    ])
    def test_injected_fault_raises_pynvml_class_on_that_device_only(self, code: int, cls: type) -> None:
        """An injected fault raises pynvml's own error class on the named device; the other device still answers."""
        nv = started()
        nv.inject_fault(0, "nvmlDeviceGetPowerUsage", code)
        with pytest.raises(cls):
            nv.nvmlDeviceGetPowerUsage(nv.nvmlDeviceGetHandleByIndex(0))
        assert nv.nvmlDeviceGetPowerUsage(nv.nvmlDeviceGetHandleByIndex(1)) > 0

    def test_counted_fault_fires_that_many_times(self) -> None:
        """A fault with count=2 fails twice, then the call succeeds."""
        nv = started()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        nv.inject_fault(0, "nvmlDeviceGetTemperature", count=2)
        for _ in range(2):
            with pytest.raises(pynvml.NVMLError):
                nv.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
        assert nv.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU) > 0

    @pytest.mark.parametrize(("device", "function", "count"), [
        (0, "nvmlDeviceGetNoSuchThing", None),
        (5, "nvmlDeviceGetPowerUsage", None),
        (0, "nvmlDeviceGetPowerUsage", 0),
    ])
    def test_bad_fault_requests_are_refused(self, device: int, function: str, count: int | None) -> None:
        """Faults on unknown functions or devices, or with a count below one, are ValueErrors."""
        with pytest.raises(ValueError):
            started().inject_fault(device, function, count=count)

    def test_lost_device_fails_every_call_until_cleared(self) -> None:
        """A lost GPU raises NVMLError_GpuIsLost on every call; clear_faults brings it back."""
        nv = started()
        h = nv.nvmlDeviceGetHandleByIndex(1)
        nv.lose_device(1)
        for fn in ("nvmlDeviceGetName", "nvmlDeviceGetUUID", "nvmlDeviceGetPowerUsage"):
            with pytest.raises(pynvml.NVMLError_GpuIsLost):
                getattr(nv, fn)(h)
        nv.clear_faults()
        assert "SIMULATED" in nv.nvmlDeviceGetName(h)

    def test_not_supported_functions_per_device(self) -> None:
        """Functions a device lists as not supported raise NVMLError_NotSupported there only."""
        nv = started(devices=[SimulatedDevice(not_supported=frozenset({"nvmlDeviceGetTotalEccErrors"})),
                              SimulatedDevice()])
        args = (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            nv.nvmlDeviceGetTotalEccErrors(nv.nvmlDeviceGetHandleByIndex(0), *args)
        assert nv.nvmlDeviceGetTotalEccErrors(nv.nvmlDeviceGetHandleByIndex(1), *args) == 0

    def test_every_listed_function_exists(self) -> None:
        """Each name fault injection accepts is a callable of the simulator and of real pynvml."""
        nv = SimulatedNVML()
        for name in FUNCTIONS:
            assert callable(getattr(nv, name))
            assert callable(getattr(pynvml, name))


class TestEvents:
    def test_xid_event_of_registered_device_is_delivered(self) -> None:
        """An injected XID on a registered device comes out of nvmlEventSetWait with its code and device."""
        nv = started()
        es = nv.nvmlEventSetCreate()
        h = nv.nvmlDeviceGetHandleByIndex(1)
        nv.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, es)
        nv.inject_xid(1, 79)
        event = nv.nvmlEventSetWait(es, 1000)
        assert event.eventType == pynvml.nvmlEventTypeXidCriticalError
        assert event.eventData == 79
        assert nv.nvmlDeviceGetUUID(event.device) == nv.nvmlDeviceGetUUID(h)

    def test_unregistered_device_event_is_not_delivered(self) -> None:
        """An XID on a device not in the set is not returned: the wait times out with NVMLError_Timeout."""
        nv = started()
        es = nv.nvmlEventSetCreate()
        nv.nvmlDeviceRegisterEvents(nv.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeXidCriticalError, es)
        nv.inject_xid(1, 48)
        with pytest.raises(pynvml.NVMLError_Timeout):
            nv.nvmlEventSetWait(es, 50)
