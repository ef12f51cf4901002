"""The ``nvml`` receiver: a poll thread and an XID event thread over pynvml, emitting ``hw.gpu.*`` rows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa
import pynvml

from collectors.nvml.catalogue import METRICS
from collectors.nvml.config import Config
from collectors.nvml.exposition import GpuPrometheusCollector, Snapshot
from collectors.nvml.readers import READERS, Device, Sample, as_text, xid_samples
from collectors.simulated_nvml import SimulatedNVML, default_devices
from sovtel.component import Backpressure, ComponentContext, Consumer, Rejected
from sovtel.records import TIMESTAMP, Batch, Signal, table_from_columns

log = logging.getLogger("sovtel.nvml")


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
            return Device(index, h, as_text(self.nvml.nvmlDeviceGetUUID(h)), as_text(self.nvml.nvmlDeviceGetName(h)))
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
                    found = by_uuid.get(as_text(nvml.nvmlDeviceGetUUID(event.device)))
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


def create(ctx: ComponentContext, config: Config) -> NvmlReceiver:
    """Build the NVML receiver (real pynvml unless ``simulated: true``)."""
    return NvmlReceiver(ctx, config)
