"""Tests for the nvml receiver against the SIMULATED NVML: rows, Prometheus names, failure isolation, XID events."""

from __future__ import annotations

import logging
import threading

import pynvml
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.nvml import METRICS, Config, NvmlReceiver, create, validate_config
from collectors.simulated_nvml import SimulatedDevice, SimulatedNVML, default_devices
from sovtel.component import Accepted, Backpressure, ComponentContext
from sovtel.config import ConfigError, parse_config
from sovtel.records import METRIC_SCHEMA, Batch, Signal
from sovtel.telemetry import Telemetry
from tests.waiting import wait_until


class Sink:
    """A metrics consumer that keeps what it gets (and can refuse with back-pressure)."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[Batch] = []
        self.refuse = refuse
        self.arrived = threading.Event()

    def consume(self, batch: Batch) -> Accepted:
        if self.refuse:
            raise Backpressure("full")
        self.batches.append(batch)
        self.arrived.set()
        return Accepted(batch.rows)

    def rows(self) -> list[dict]:
        return [r for b in self.batches for r in b.table.to_pylist()]


def receiver(nv: SimulatedNVML | None = None, **cfg) -> tuple[NvmlReceiver, Telemetry]:
    tel = Telemetry()
    ctx = ComponentContext(name="nvml", telemetry=tel.component("nvml"), node="gpu-node-01")
    r = NvmlReceiver(ctx, Config(**cfg), nv if nv is not None else SimulatedNVML())
    return r, tel


def polled(nv: SimulatedNVML | None = None, polls: int = 1, **cfg) -> tuple[NvmlReceiver, Telemetry, Sink]:
    """A receiver registered on /metrics, connected and polled ``polls`` times without threads."""
    r, tel = receiver(nv, xid_events=False, **cfg)
    sink = Sink()
    tel.registry.register(r._collector)
    r._consumer = sink
    assert r.connect()
    for _ in range(polls):
        r.poll()
    return r, tel, sink


def exposition(tel: Telemetry) -> str:
    return generate_latest(tel.registry).decode()


def sample(tel: Telemetry, name: str, **labels: str) -> float | None:
    for n, lab, v in tel.samples():
        if n == name and all(lab.get(k) == x for k, x in labels.items()):
            return v
    return None


EXPECTED_METRICS = [
    "hw.gpu.utilization", "hw.gpu.memory.controller.utilization", "hw.gpu.memory.usage", "hw.gpu.memory.free",
    "hw.gpu.memory.limit", "hw.gpu.memory.utilization", "hw.gpu.temperature", "hw.gpu.memory.temperature",
    "hw.power", "hw.gpu.power.limit", "hw.energy", "hw.gpu.clock.sm", "hw.gpu.clock.memory", "hw.gpu.throttle",
    "hw.errors", "hw.gpu.memory.retired_pages", "hw.gpu.memory.remapped_rows", "hw.gpu.pcie.replays",
    "hw.gpu.process.memory.usage", "hw.gpu.mig.mode", "hw.status",
]


class TestRows:
    @pytest.mark.parametrize("metric", EXPECTED_METRICS)
    def test_poll_emits_each_metric_for_every_gpu(self, metric: str) -> None:
        """A poll emits this hw.* metric once or more for each of the two simulated GPUs."""
        _, _, sink = polled()
        gpus = {dict(r["attributes"])["gpu.index"] for r in sink.rows() if r["metric_name"] == metric}
        assert gpus == {"0", "1"}

    def test_rows_follow_the_metric_schema_and_carry_identity(self) -> None:
        """Rows are METRIC_SCHEMA tables with node, hw.id, hw.name, hw.type=gpu and sovtel.simulated=true."""
        _, _, sink = polled()
        assert sink.batches[0].signal is Signal.METRICS
        assert sink.batches[0].table.schema.equals(METRIC_SCHEMA)
        for row in sink.rows():
            attrs = dict(row["attributes"])
            assert row["node"] == "gpu-node-01"
            assert attrs["hw.type"] == "gpu" and attrs["sovtel.simulated"] == "true"
            assert attrs["hw.id"].startswith("GPU-") and "SIMULATED" in attrs["hw.name"]
            definition = METRICS[row["metric_name"]]
            assert (row["unit"], row["metric_kind"], row["is_monotonic"]) == (
                definition.unit, definition.kind, definition.monotonic)

    def test_values_are_converted_to_base_units(self) -> None:
        """NVML's percent, milliwatts, millijoules and MHz become ratios, watts, joules and hertz."""
        nv = SimulatedNVML(clock=lambda: 1_800_000_000.0)
        _, _, sink = polled(nv)
        h = nv.nvmlDeviceGetHandleByIndex(0)
        rows = {(r["metric_name"], dict(r["attributes"]).get("hw.gpu.task")): r["value"] for r in sink.rows()
                if dict(r["attributes"])["gpu.index"] == "0"}
        assert rows[("hw.gpu.utilization", "general")] == nv.nvmlDeviceGetUtilizationRates(h).gpu / 100
        assert rows[("hw.power", None)] == nv.nvmlDeviceGetPowerUsage(h) / 1000
        assert rows[("hw.energy", None)] == nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000
        assert rows[("hw.gpu.clock.sm", None)] == nv.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) * 1e6

    def test_mig_instances_are_reported(self) -> None:
        """A GPU in MIG mode reports its instance count and per-instance memory."""
        nv = SimulatedNVML([SimulatedDevice(mig_instances=3)])
        _, _, sink = polled(nv)
        rows = sink.rows()
        assert [r["value"] for r in rows if r["metric_name"] == "hw.gpu.mig.instances"] == [3.0]
        instances = {dict(r["attributes"])["hw.gpu.mig.instance"] for r in rows
                     if r["metric_name"] == "hw.gpu.mig.memory.usage"}
        assert instances == {"1", "2", "3"}

    def test_backpressure_drops_the_poll_and_counts_it(self) -> None:
        """When the pipeline is full the poll's rows are dropped and counted with reason backpressure."""
        r, tel = receiver(xid_events=False)
        r._consumer = Sink(refuse=True)
        r.connect()
        assert r.poll() == 0
        assert tel.total("sovtel_dropped_records_total", component="nvml", reason="backpressure") > 0


class TestPrometheus:
    @pytest.mark.parametrize("name", [
        "hw_gpu_utilization_ratio", "hw_gpu_memory_usage_bytes", "hw_gpu_temperature_celsius", "hw_power_watts",
        "hw_energy_joules_total", "hw_errors_total", "hw_gpu_throttle", "hw_status",
    ])
    def test_otel_names_per_gpu(self, name: str) -> None:
        """OpenTelemetry-style Prometheus series exist for both GPUs with node/uuid/name/simulated labels."""
        _, tel, _ = polled()
        gpus = {lab["gpu"] for n, lab, _ in tel.samples() if n == name}
        assert gpus == {"0", "1"}
        labels = next(lab for n, lab, _ in tel.samples() if n == name)
        assert labels["node"] == "gpu-node-01" and labels["simulated"] == "true" and labels["uuid"].startswith("GPU-")

    @pytest.mark.parametrize(("dcgm", "otel", "scale"), [
        ("DCGM_FI_DEV_GPU_UTIL", ("hw_gpu_utilization_ratio", {"hw_gpu_task": "general"}), 100.0),
        ("DCGM_FI_DEV_FB_USED", ("hw_gpu_memory_usage_bytes", {}), 1 / 2**20),
        ("DCGM_FI_DEV_POWER_USAGE", ("hw_power_watts", {}), 1.0),
        ("DCGM_FI_DEV_GPU_TEMP", ("hw_gpu_temperature_celsius", {}), 1.0),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", ("hw_energy_joules_total", {}), 1000.0),
        ("DCGM_FI_DEV_SM_CLOCK", ("hw_gpu_clock_sm_hertz", {}), 1e-6),
    ])
    def test_dcgm_names_carry_dcgm_units(self, dcgm: str, otel: tuple[str, dict], scale: float) -> None:
        """With prometheus_names: both, each DCGM field equals the OpenTelemetry value in DCGM's unit."""
        _, tel, _ = polled(prometheus_names="both")
        for gpu in ("0", "1"):
            value = sample(tel, dcgm, gpu=gpu, UUID=sample_uuid(tel, gpu))
            assert value is not None
            assert value == pytest.approx(sample(tel, otel[0], gpu=gpu, **otel[1]) * scale)

    @pytest.mark.parametrize(("mode", "present", "absent"), [
        ("otel", "hw_power_watts", "DCGM_FI_DEV_POWER_USAGE"),
        ("dcgm", "DCGM_FI_DEV_POWER_USAGE", "hw_power_watts"),
    ])
    def test_naming_mode_selects_one_set(self, mode: str, present: str, absent: str) -> None:
        """otel mode exposes no DCGM names and dcgm mode no OpenTelemetry names."""
        _, tel, _ = polled(prometheus_names=mode)
        text = exposition(tel)
        assert f"\n{present}{{" in text
        assert f"\n{absent}{{" not in text

    def test_dcgm_counters_keep_dcgm_names_and_parse(self) -> None:
        """DCGM counters are exposed without a _total suffix, as dcgm-exporter does, in valid exposition text."""
        _, tel, _ = polled(prometheus_names="dcgm")
        names = {s.name for fam in text_string_to_metric_families(exposition(tel)) for s in fam.samples}
        assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in names
        assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" not in names

    def test_shutdown_removes_gpu_series_and_is_idempotent(self) -> None:
        """Shutdown unregisters the GPU collector; repeating it, or calling it without start, is harmless."""
        r, tel = receiver(xid_events=False, interval_s=60)
        r.shutdown()
        r.start({Signal.METRICS: Sink()})
        assert wait_until(lambda: sample(tel, "gpu_up") == 1.0)
        r.shutdown()
        r.shutdown()
        assert sample(tel, "gpu_up") is None


def sample_uuid(tel: Telemetry, gpu: str) -> str:
    return next(lab["UUID"] for n, lab, _ in tel.samples() if n == "DCGM_FI_DEV_GPU_UTIL" and lab["gpu"] == gpu)


class TestFailures:
    def test_lost_gpu_does_not_stop_the_others(self, caplog: pytest.LogCaptureFixture) -> None:
        """A GPU that fell off the bus reports hw.status failed; the other GPU's readings continue; gpu_up stays 1."""
        nv = SimulatedNVML()
        r, tel, sink = polled(nv)
        nv.lose_device(1)
        sink.batches.clear()
        with caplog.at_level(logging.ERROR, logger="sovtel.nvml"):
            r.poll()
            r.poll()
        by_gpu: dict[str, set[str]] = {}
        for row in sink.rows():
            by_gpu.setdefault(dict(row["attributes"])["gpu.index"], set()).add(row["metric_name"])
        assert "hw.power" in by_gpu["0"] and "hw.power" not in by_gpu["1"]
        assert sample(tel, "hw_status", gpu="1", hw_state="failed") == 1.0
        assert sample(tel, "hw_status", gpu="0", hw_state="ok") == 1.0
        assert sample(tel, "gpu_up") == 1.0
        assert len([m for m in caplog.messages if "is lost" in m]) == 1

    def test_one_failing_reading_on_one_gpu_is_isolated(self, caplog: pytest.LogCaptureFixture) -> None:
        """A failing power reading on GPU 0 is counted and warned once; its other readings and GPU 1's continue."""
        nv = SimulatedNVML()
        nv.inject_fault(0, "nvmlDeviceGetPowerUsage", pynvml.NVML_ERROR_UNKNOWN)
        with caplog.at_level(logging.WARNING, logger="sovtel.nvml"):
            _, tel, sink = polled(nv, polls=3)
        power = {dict(row["attributes"])["gpu.index"] for row in sink.rows() if row["metric_name"] == "hw.power"}
        temps = {dict(row["attributes"])["gpu.index"] for row in sink.rows()
                 if row["metric_name"] == "hw.gpu.temperature"}
        assert power == {"1"} and temps == {"0", "1"}
        assert sample(tel, "sovtel_nvml_errors_total", gpu="0", reading="power", error="Unknown") == 3.0
        assert len([m for m in caplog.messages if "power" in m]) == 1

    def test_not_supported_is_skipped_quietly_and_counted(self, caplog: pytest.LogCaptureFixture) -> None:
        """NotSupported readings produce no rows and no warnings, only the not-supported counter."""
        nv = SimulatedNVML([SimulatedDevice(not_supported=frozenset({"nvmlDeviceGetTotalEccErrors",
                                                                      "nvmlDeviceGetPcieReplayCounter"}))])
        with caplog.at_level(logging.WARNING, logger="sovtel.nvml"):
            _, tel, sink = polled(nv, polls=2)
        names = {(row["metric_name"], dict(row["attributes"]).get("error.type")) for row in sink.rows()}
        assert ("hw.errors", "corrected") not in names and ("hw.gpu.pcie.replays", None) not in names
        assert ("hw.power", None) in names
        assert sample(tel, "sovtel_nvml_not_supported_total", gpu="0", reading="ecc_corrected") == 2.0
        assert sample(tel, "sovtel_nvml_not_supported_total", gpu="0", reading="pcie_replay") == 2.0
        assert caplog.records == []

    def test_no_driver_logs_once_keeps_running_and_recovers(self, caplog: pytest.LogCaptureFixture) -> None:
        """Without a driver: one clear log line, gpu_up 0, the thread keeps retrying, and picks up a driver later."""
        nv = SimulatedNVML(driver_loaded=False)
        r, tel = receiver(nv, interval_s=0.05, init_retry_s=0.05, xid_events=False)
        sink = Sink()
        with caplog.at_level(logging.WARNING, logger="sovtel.nvml"):
            r.start({Signal.METRICS: sink})
            assert wait_until(lambda: nv.calls.get("nvmlInit", 0) >= 4)
            assert sample(tel, "gpu_up") == 0.0
            assert sink.batches == []
            assert r._threads[0].is_alive()
            nv.driver_loaded = True
            assert wait_until(lambda: sample(tel, "gpu_up") == 1.0)
        r.shutdown()
        lines = [m for m in caplog.messages if "NVML unavailable" in m]
        assert len(lines) == 1 and "gpu_up=0" in lines[0]
        assert sink.batches

    def test_driver_without_gpus_reports_gpu_up_zero(self) -> None:
        """A driver that sees no GPU gives gpu_up 0 and emits no rows."""
        _, tel, sink = polled(SimulatedNVML(devices=[]))
        assert sample(tel, "gpu_up") == 0.0
        assert sink.rows() == []


class TestXid:
    def test_xid_event_is_emitted_at_once_and_exposed(self, caplog: pytest.LogCaptureFixture) -> None:
        """An XID on GPU 1 becomes an hw.errors xid row before the next poll, a log line and DCGM_FI_DEV_XID_ERRORS."""
        nv = SimulatedNVML()
        r, tel = receiver(nv, interval_s=60, prometheus_names="both")
        sink = Sink()
        with caplog.at_level(logging.ERROR, logger="sovtel.nvml"):
            r.start({Signal.METRICS: sink})
            # After the first poll and with the event thread waiting: the next poll is a minute away.
            assert wait_until(lambda: r.polls >= 1 and nv.calls.get("nvmlEventSetWait", 0) >= 1)
            nv.inject_xid(1, 79)

            def xid_rows() -> list[dict]:
                return [row for row in sink.rows() if dict(row["attributes"]).get("error.type") == "xid"]

            assert wait_until(lambda: len(xid_rows()) == 1)
        row = xid_rows()[0]
        assert dict(row["attributes"])["hw.gpu.xid"] == "79" and dict(row["attributes"])["gpu.index"] == "1"
        assert row["value"] == 1.0 and row["metric_name"] == "hw.errors"
        assert sample(tel, "DCGM_FI_DEV_XID_ERRORS", gpu="1") == 79.0
        assert sample(tel, "DCGM_FI_DEV_XID_ERRORS", gpu="0") == 0.0
        assert any("XID 79 on GPU 1" in m for m in caplog.messages)
        r.shutdown()

    def test_gpu_without_event_support_is_counted_not_fatal(self) -> None:
        """A GPU that cannot register for events is counted as not supported; the other still reports XIDs."""
        nv = SimulatedNVML([SimulatedDevice(not_supported=frozenset({"nvmlDeviceRegisterEvents"})), SimulatedDevice()])
        r, tel = receiver(nv, interval_s=60)
        sink = Sink()
        r.start({Signal.METRICS: sink})
        assert wait_until(lambda: nv.calls.get("nvmlEventSetWait", 0) >= 1)
        nv.inject_xid(1, 31)
        assert wait_until(lambda: sample(tel, "hw_errors_total", gpu="1", error_type="xid", hw_gpu_xid="31") == 1.0)
        assert sample(tel, "sovtel_nvml_not_supported_total", gpu="0", reading="xid_events") == 1.0
        r.shutdown()


class TestConfig:
    def test_default_receiver_uses_real_pynvml(self) -> None:
        """Without simulated: true the receiver drives the real pynvml module (sovtel run never simulates)."""
        r = create(ComponentContext(name="nvml", telemetry=Telemetry().component("nvml")), Config())
        assert r.nvml is pynvml and not r.simulated

    def test_real_pynvml_without_driver_starts_and_reports_down(self) -> None:
        """On this driverless machine the real receiver starts, reports gpu_up 0 and shuts down cleanly."""
        tel = Telemetry()
        r = create(ComponentContext(name="nvml", telemetry=tel.component("nvml")), Config(init_retry_s=60))
        r.start({Signal.METRICS: Sink()})
        assert wait_until(lambda: pynvml_tried(r))
        assert sample(tel, "gpu_up") == 0.0
        r.shutdown()

    def test_simulated_config_builds_simulated_devices(self) -> None:
        """simulated: true with simulated_devices builds that many SIMULATED GPUs."""
        r = create(ComponentContext(name="nvml", telemetry=Telemetry().component("nvml")),
                   Config(simulated=True, simulated_devices=3))
        assert r.simulated and len(r.nvml.devices) == 3

    def test_demo_config_validates(self) -> None:
        """The demo's nvml receiver section {simulated: true, interval_s: 1} validates in a full config."""
        cfg = parse_config({
            "receivers": {"nvml": {"simulated": True, "interval_s": 1}},
            "exporters": {"clickhouse": {"dsn": "chdb:///var/lib/sovtel/store"}},
            "service": {"pipelines": {"metrics": {"receivers": ["nvml"], "exporters": ["clickhouse"]}}},
        })
        assert cfg.component("receivers", "nvml").config == Config(simulated=True, interval_s=1)

    @pytest.mark.parametrize(("section", "needle"), [
        ({"interval_s": 0}, "interval_s"),
        ({"interval": 5}, "unknown key"),
        ({"prometheus_names": "nvidia"}, "prometheus_names"),
        ({"simulated_devices": 4}, "simulated_devices only applies"),
    ])
    def test_invalid_sections_are_reported(self, section: dict, needle: str) -> None:
        """Bad nvml sections fail validation with a message naming the problem."""
        with pytest.raises(ConfigError) as info:
            parse_config({
                "receivers": {"nvml": section},
                "exporters": {"clickhouse": {"dsn": "chdb:///var/lib/sovtel/store"}},
                "service": {"pipelines": {"metrics": {"receivers": ["nvml"], "exporters": ["clickhouse"]}}},
            })
        assert any(needle in e for e in info.value.errors)

    def test_validate_config_accepts_simulated_devices_with_simulation(self) -> None:
        """simulated_devices together with simulated: true is valid."""
        assert validate_config(Config(simulated=True, simulated_devices=1)) == []


def pynvml_tried(r: NvmlReceiver) -> bool:
    return r._init_logged


def test_default_devices_are_out_of_phase() -> None:
    """Default simulated GPUs follow different load curves, so dashboards show distinct lines."""
    nv = SimulatedNVML(default_devices(2), clock=lambda: 1_800_000_000.0)
    assert nv.utilization(0) != nv.utilization(1)
