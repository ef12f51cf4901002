"""Tests for sovtel.pipeline and its queued exporters: queueing, batching, back-pressure, retries, start, shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest

from sovtel.component import Accepted, Backpressure, ComponentConfig, ComponentContext, Consumer, ExportResult, Rejected
from sovtel.config import ComponentSpec, Config, ServiceConfig
from sovtel.pipeline import Pipeline, Service
from sovtel.queue import QueuedExporter, QueueSettings
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry


def spans(n: int, prefix: str = "t") -> Batch:
    ids = [f"{prefix}{i:031d}" for i in range(n)]
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {"trace_id": ids}))


class RecordingExporter:
    """An exporter double that records what it was given and can fail on demand."""

    def __init__(self, results: list[ExportResult] | None = None) -> None:
        self.results = list(results or [])
        self.batches: list[Batch] = []
        self.attempts = 0
        self.started = False
        self.shutdowns = 0

    def start(self) -> None:
        self.started = True

    def export(self, batch: Batch) -> ExportResult:
        self.attempts += 1
        result = self.results.pop(0) if self.results else ExportResult.SUCCESS
        if result is ExportResult.SUCCESS:
            self.batches.append(batch)
        return result

    def shutdown(self) -> None:
        self.shutdowns += 1

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)


def queued(exporter: RecordingExporter, **settings: float) -> tuple[QueuedExporter, Telemetry]:
    tel = Telemetry()
    q = QueuedExporter("ch", exporter, tel.component("ch"), QueueSettings(**settings))  # type: ignore[arg-type]
    return q, tel


class TestQueuedExporter:
    def test_small_batches_are_coalesced_into_large_inserts(self) -> None:
        """Many small batches reach the exporter as few batches of up to batch_rows rows."""
        exp = RecordingExporter()
        q, tel = queued(exp, batch_rows=1000, max_delay_s=5.0)
        q.start()
        for i in range(50):
            q.enqueue(spans(100, prefix=f"{i:02d}"))
        assert q.flush(10)
        q.shutdown()
        assert exp.rows == 5000
        assert len(exp.batches) <= 6
        assert all(b.rows <= 1000 for b in exp.batches)
        assert tel.total("sovtel_sent_records_total", component="ch") == 5000

    def test_full_queue_raises_backpressure(self) -> None:
        """A batch that does not fit under max_queue_rows is refused with Backpressure, not dropped."""
        exp = RecordingExporter()
        q, _ = queued(exp, batch_rows=10_000, max_delay_s=60, max_queue_rows=150)
        q.start()
        q.enqueue(spans(100))
        with pytest.raises(Backpressure):
            q.enqueue(spans(100))
        q.shutdown()
        assert exp.rows == 100

    def test_retryable_failures_are_retried_until_stored(self) -> None:
        """RETRYABLE results keep the batch and retry it; nothing is lost."""
        exp = RecordingExporter([ExportResult.RETRYABLE, ExportResult.RETRYABLE])
        q, tel = queued(exp, batch_rows=10, max_delay_s=0.01, retry_initial_s=0.01)
        q.start()
        q.enqueue(spans(10))
        assert q.flush(10)
        q.shutdown()
        assert exp.rows == 10 and exp.attempts == 3
        assert tel.total("sovtel_export_failures_total", outcome="retryable") == 2

    def test_permanent_failure_is_dropped_and_counted(self) -> None:
        """A PERMANENT result drops the batch and counts it under export_rejected."""
        exp = RecordingExporter([ExportResult.PERMANENT])
        q, tel = queued(exp, batch_rows=10, max_delay_s=0.01)
        q.start()
        q.enqueue(spans(10))
        assert q.flush(10)
        q.shutdown()
        assert exp.rows == 0
        assert tel.total("sovtel_dropped_records_total", reason="export_rejected") == 10

    def test_exporter_that_raises_is_treated_as_retryable(self) -> None:
        """An exporter raising by mistake does not kill the worker; the batch is retried."""

        class Flaky(RecordingExporter):
            def export(self, batch: Batch) -> ExportResult:
                if self.attempts == 0:
                    self.attempts += 1
                    raise RuntimeError("boom")
                return super().export(batch)

        exp = Flaky()
        q, _ = queued(exp, batch_rows=5, max_delay_s=0.01, retry_initial_s=0.01)
        q.start()
        q.enqueue(spans(5))
        assert q.flush(10)
        q.shutdown()
        assert exp.rows == 5

    def test_shutdown_is_idempotent_and_safe_without_start(self) -> None:
        """shutdown may be called before start and more than once."""
        exp = RecordingExporter()
        q, _ = queued(exp)
        q.shutdown()
        q.start()
        q.shutdown()
        q.shutdown()
        assert exp.shutdowns == 3

    def test_shutdown_drains_the_queue(self) -> None:
        """Rows queued at shutdown are exported before the exporter closes."""
        exp = RecordingExporter()
        q, _ = queued(exp, batch_rows=100_000, max_delay_s=60)
        q.start()
        q.enqueue(spans(300))
        q.shutdown()
        assert exp.rows == 300

    def test_concurrent_producers_lose_nothing(self) -> None:
        """Batches enqueued from several threads are all exported exactly once."""
        exp = RecordingExporter()
        q, _ = queued(exp, batch_rows=2000, max_delay_s=0.05)
        q.start()

        def produce(k: int) -> None:
            for i in range(20):
                q.enqueue(spans(50, prefix=f"{k}{i:02d}"))

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        q.shutdown()
        ids = pa.concat_tables([b.table for b in exp.batches]).column("trace_id").to_pylist()
        assert len(ids) == 4000 == len(set(ids))


class TestPipeline:
    def test_processors_run_in_order_and_output_is_queued(self) -> None:
        """Processors are applied in configured order before the batch reaches every exporter."""
        calls: list[str] = []

        def tag(name: str):
            def proc(b: Batch) -> Batch:
                calls.append(name)
                return b.replace(b.table.slice(0, b.rows - 1))

            return proc

        exp1, exp2 = RecordingExporter(), RecordingExporter()
        tel = Telemetry()
        q1 = QueuedExporter("a", exp1, tel.component("a"), QueueSettings(max_delay_s=0.01))
        q2 = QueuedExporter("b", exp2, tel.component("b"), QueueSettings(max_delay_s=0.01))
        q1.start()
        q2.start()
        p = Pipeline("traces", Signal.TRACES, [("one", tag("one")), ("two", tag("two"))], [q1, q2], tel.component("p"))
        result = p.consume(spans(10))
        q1.shutdown()
        q2.shutdown()
        assert calls == ["one", "two"]
        assert result.accepted == 10 and result.dropped == 2
        assert exp1.rows == exp2.rows == 8

    def test_failing_processor_fails_closed(self) -> None:
        """A processor error rejects the batch: nothing reaches the exporter and the drop is counted."""

        def broken(b: Batch) -> Batch:
            raise ValueError("masking failed")

        exp = RecordingExporter()
        tel = Telemetry()
        q = QueuedExporter("a", exp, tel.component("a"), QueueSettings(max_delay_s=0.01))
        q.start()
        p = Pipeline("traces", Signal.TRACES, [("pii", broken)], [q], tel.component("p"))
        with pytest.raises(Rejected, match="pii"):
            p.consume(spans(4))
        q.shutdown()
        assert exp.rows == 0
        assert tel.total("sovtel_dropped_records_total", reason="processor_error:pii") == 4

    def test_no_partial_fan_out_under_backpressure(self) -> None:
        """If one exporter is full, the batch is refused before any exporter receives it."""
        exp1, exp2 = RecordingExporter(), RecordingExporter()
        tel = Telemetry()
        q1 = QueuedExporter("a", exp1, tel.component("a"), QueueSettings(max_delay_s=60, batch_rows=10**6))
        tiny = QueueSettings(max_delay_s=60, batch_rows=10**6, max_queue_rows=5)
        q2 = QueuedExporter("b", exp2, tel.component("b"), tiny)
        p = Pipeline("traces", Signal.TRACES, [], [q1, q2], tel.component("p"))
        with pytest.raises(Backpressure):
            p.consume(spans(10))
        assert q1.queued_rows == 0

    def test_pipeline_counts_queued_and_exporters_count_sent(self) -> None:
        """The pipeline counts rows it queued (sovtel_queued_records); sent counts only rows a destination took."""
        exp = RecordingExporter([ExportResult.RETRYABLE] * 1000)
        tel = Telemetry()
        q = QueuedExporter("a", exp, tel.component("a"), QueueSettings(max_delay_s=0.01, retry_initial_s=0.01))
        q.start()
        Pipeline("traces", Signal.TRACES, [], [q], tel.component("p")).consume(spans(7))
        assert tel.total("sovtel_queued_records_total", component="p") == 7
        assert q.flush(0.2) is False
        assert tel.total("sovtel_sent_records_total") == 0
        exp.results.clear()
        assert q.flush(10)
        q.shutdown()
        assert tel.total("sovtel_sent_records_total", component="a") == 7
        assert tel.total("sovtel_sent_records_total", component="p") == 0

    def test_wrong_signal_is_rejected(self) -> None:
        """A batch of another signal is refused by a pipeline."""
        p = Pipeline("logs", Signal.LOGS, [], [], Telemetry().component("p"))
        with pytest.raises(Rejected):
            p.consume(spans(1))


def test_flush_times_out_when_exporter_keeps_failing() -> None:
    """flush reports False rather than hanging when the destination stays down."""
    exp = RecordingExporter([ExportResult.RETRYABLE] * 1000)
    q, _ = queued(exp, batch_rows=10, max_delay_s=0.01, retry_initial_s=0.05, retry_max_s=0.05)
    q.start()
    q.enqueue(spans(10))
    t0 = time.monotonic()
    assert q.flush(0.5) is False
    assert time.monotonic() - t0 < 60  # returns near its timeout; the bound only catches a hang
    q.shutdown(timeout=0.2)


class TestTierRouting:
    def test_outputs_receive_only_their_permitted_tiers(self) -> None:
        """The pipeline hands each exporter only rows of tiers its policy permits; the rest are reported dropped."""
        from sovtel.routing import SinkPolicy

        tel = Telemetry()
        local, eu = RecordingExporter(), RecordingExporter()
        q1 = QueuedExporter("local", local, tel.component("local"), QueueSettings(max_delay_s=0.01),
                            policy=SinkPolicy("de", frozenset({"local"})))
        q2 = QueuedExporter("eu", eu, tel.component("eu"), QueueSettings(max_delay_s=0.01),
                            policy=SinkPolicy("eu", frozenset({"sovereign"})))
        q1.start()
        q2.start()
        table = table_from_columns(Signal.TRACES, {"tier": ["local", "sovereign", "", "public"],
                                                   "trace_id": ["a", "b", "c", "d"]})
        result = Pipeline("traces", Signal.TRACES, [], [q1, q2], tel.component("p")).consume(
            Batch(Signal.TRACES, table))
        q1.shutdown()
        q2.shutdown()
        assert [b.table.column("trace_id").to_pylist() for b in local.batches] == [["a", "c"]]
        assert [b.table.column("trace_id").to_pylist() for b in eu.batches] == [["b"]]
        assert result.accepted == 4 and result.dropped == 1
        assert tel.total("sovtel_dropped_records_total", reason="public_identifiable:public") == 1

    def test_full_durable_sink_refuses_the_whole_batch(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """If one sink's disk budget is full the request is refused before any sink queues a row."""
        from sovtel.queue import DurableBuffer

        tel = Telemetry()
        roomy = QueuedExporter("a", RecordingExporter(), tel.component("a"), QueueSettings(max_delay_s=60))
        full_buf = DurableBuffer(tmp_path / "b.sqlite", max_bytes=1)
        full = QueuedExporter("b", RecordingExporter(), tel.component("b"), QueueSettings(max_delay_s=60),
                              buffer=full_buf)
        with pytest.raises(Backpressure):
            Pipeline("traces", Signal.TRACES, [], [roomy, full], tel.component("p")).consume(spans(10))
        assert roomy.queued_rows == 0 and full.queued_rows == 0
        full_buf.close()


class LifecycleProcessor:
    """A processor double with the optional start/shutdown; it writes what happens to it into ``events``."""

    def __init__(self, name: str, events: list[str], fail_start: bool = False) -> None:
        self.name = name
        self.events = events
        self.fail_start = fail_start
        self.context: ComponentContext | None = None

    def start(self, context: ComponentContext) -> None:
        self.events.append(f"start {self.name}")
        self.context = context
        if self.fail_start:
            raise RuntimeError(f"{self.name}: model not found")

    def shutdown(self) -> None:
        self.events.append(f"shutdown {self.name}")

    def __call__(self, batch: Batch) -> Batch:
        self.events.append(f"process {self.name}")
        return batch


class WiredReceiver:
    """A receiver double: keeps the consumers it is started with, so a test can feed the pipeline."""

    def __init__(self) -> None:
        self.consumers: dict[Signal, Consumer] = {}
        self.shutdowns = 0

    def start(self, consumers: dict[Signal, Consumer]) -> None:
        self.consumers = consumers

    def shutdown(self) -> None:
        self.shutdowns += 1


def component(kind: str, name: str, made: object) -> tuple[tuple[str, str], ComponentSpec]:
    """A configured component whose module's ``create`` returns ``made``."""
    module = ModuleType(f"fake_{kind}")
    module.Config = ComponentConfig  # type: ignore[attr-defined]
    module.create = lambda ctx, cfg: made  # type: ignore[attr-defined]
    return (kind, name), ComponentSpec(kind, name, name.partition("/")[0], module, ComponentConfig())


def service(data_dir: Path, processors: list[LifecycleProcessor], receiver: WiredReceiver,
            exporter: RecordingExporter) -> Service:
    """A service of one traces pipeline: ``receiver`` → ``processors`` → ``exporter`` (in-memory queue)."""
    components = dict([
        component("receivers", "wired", receiver),
        component("exporters", "recording", exporter),
        *(component("processors", f"lifecycle/{p.name}", p) for p in processors),
    ])
    svc = ServiceConfig(
        data_dir=data_dir,
        telemetry={"metrics": {"enabled": False}},  # type: ignore[arg-type]
        pipelines={"traces": {"receivers": ["wired"], "exporters": ["recording"],  # type: ignore[dict-item]
                              "processors": [f"lifecycle/{p.name}" for p in processors]}},
    )
    return Service(Config(svc, components))


class TestProcessorLifecycle:
    def test_processors_start_before_data_and_shut_down_with_the_service(self, tmp_path: Path) -> None:
        """Service.start starts each lifecycle processor (with its context) before data flows; shutdown stops them."""
        events: list[str] = []
        procs = [LifecycleProcessor("a", events), LifecycleProcessor("b", events)]
        receiver, exporter = WiredReceiver(), RecordingExporter()
        svc = service(tmp_path, procs, receiver, exporter)
        svc.start()
        assert events == ["start a", "start b"]
        assert procs[0].context is not None and procs[0].context.name == "lifecycle/a"
        receiver.consumers[Signal.TRACES].consume(spans(3))
        assert svc.flush(10)
        svc.shutdown()
        assert events == ["start a", "start b", "process a", "process b", "shutdown b", "shutdown a"]
        assert exporter.rows == 3 and receiver.shutdowns == 1

    def test_a_processor_that_cannot_start_fails_the_service_start(self, tmp_path: Path) -> None:
        """A processor whose start raises makes Service.start raise, and what was started is shut down."""
        events: list[str] = []
        procs = [LifecycleProcessor("ok", events), LifecycleProcessor("broken", events, fail_start=True)]
        receiver, exporter = WiredReceiver(), RecordingExporter()
        svc = service(tmp_path, procs, receiver, exporter)
        with pytest.raises(RuntimeError, match="model not found"):
            svc.start()
        assert events[:2] == ["start ok", "start broken"]
        assert "shutdown ok" in events[2:]
        assert exporter.started and exporter.shutdowns == 1
        assert receiver.consumers == {}  # no receiver was started: no data reached a half-started pipeline
        assert svc.exporters == {} and svc.pipelines == {}


def hex_spans(n: int, start: int = 0, age_days: float = 0.0) -> Batch:
    """``n`` spans with valid OTLP ids (hex) and a timestamp ``age_days`` ago."""
    ts = time.time_ns() - int(age_days * 86_400e9)
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {
        "trace_id": [f"{0xAB:016x}{i:016x}" for i in range(start, start + n)],
        "span_id": [f"{i + 1:016x}" for i in range(start, start + n)],
        "timestamp": [ts] * n,
    }))


class TestResendsAndRetention:
    def pipeline(self, **kwargs: object) -> tuple[Pipeline, QueuedExporter, Telemetry]:
        tel = Telemetry()
        q = QueuedExporter("ch", RecordingExporter(), tel.component("ch"),
                           QueueSettings(max_delay_s=60, batch_rows=10**6))
        return Pipeline("traces", Signal.TRACES, [], [q], tel.component("p"), **kwargs), q, tel  # type: ignore[arg-type]

    def test_a_resent_request_is_queued_once_and_answered_as_accepted(self) -> None:
        """Spans sent again within the window are dropped as duplicates, counted, and not reported to the client."""
        p, q, tel = self.pipeline()
        assert p.consume(hex_spans(100)) == Accepted(100, 0, {})
        again = p.consume(hex_spans(100))
        assert (again.accepted, again.dropped, dict(again.reasons)) == (100, 0, {})
        overlap = p.consume(hex_spans(100, start=50))
        assert overlap.dropped == 0
        assert q.queued_rows == 150
        assert tel.total("sovtel_dropped_records_total", component="p", reason="duplicate") == 150
        assert tel.total("sovtel_queued_records_total", component="p") == 150

    def test_a_span_repeated_inside_one_request_is_queued_once(self) -> None:
        """Two rows with the same trace and span id in one batch are one span."""
        p, q, _ = self.pipeline()
        batch = hex_spans(10)
        p.consume(batch.replace(pa.concat_tables([batch.table, batch.table.slice(0, 4)])))
        assert q.queued_rows == 10

    def test_a_request_refused_for_backpressure_is_not_remembered(self) -> None:
        """After a 429 nothing was queued, so the client's retry must be stored, not taken for a duplicate."""
        tel, exp = Telemetry(), RecordingExporter()
        q = QueuedExporter("ch", exp, tel.component("ch"),
                           QueueSettings(max_delay_s=60, batch_rows=10**6, max_queue_rows=150))
        q.start()
        p = Pipeline("traces", Signal.TRACES, [], [q], tel.component("p"))
        p.consume(hex_spans(100, start=1000))
        with pytest.raises(Backpressure):
            p.consume(hex_spans(100))
        assert q.flush(30)  # the store drains the queue; the client retries
        p.consume(hex_spans(100))
        assert q.flush(30)
        q.shutdown()
        assert exp.rows == 200

    def test_rows_without_valid_ids_are_never_deduplicated(self) -> None:
        """Rows whose ids are not OTLP hex (no identity) are all kept, however often they come."""
        p, q, _ = self.pipeline()
        p.consume(spans(5))
        p.consume(spans(5))
        assert q.queued_rows == 10

    def test_dedup_can_be_disabled(self) -> None:
        """With dedup disabled every resend is queued again (the pre-window behaviour)."""
        from sovtel.dedup import DedupConfig

        p, q, _ = self.pipeline(dedup=DedupConfig(enabled=False))
        p.consume(hex_spans(10))
        p.consume(hex_spans(10))
        assert q.queued_rows == 20

    def test_rows_older_than_the_retention_are_reported_not_queued(self) -> None:
        """Rows the sink's TTL would delete on arrival are dropped, counted and reported in Accepted.reasons."""
        import datetime as dt

        p, q, tel = self.pipeline(retention={"ch": dt.timedelta(days=30)})
        result = p.consume(pa_concat(hex_spans(3, age_days=0), hex_spans(2, start=10, age_days=31)))
        assert (result.accepted, result.dropped, dict(result.reasons)) == (5, 2, {"older_than_retention": 2})
        assert q.queued_rows == 3
        assert tel.total("sovtel_dropped_records_total", component="p", reason="older_than_retention") == 2
        again = p.consume(pa_concat(hex_spans(3, age_days=0), hex_spans(2, start=10, age_days=31)))
        assert dict(again.reasons) == {"older_than_retention": 2}  # a resend gets the same answer
        assert q.queued_rows == 3

    def test_a_resent_log_request_gets_its_first_answer_and_is_queued_once(self) -> None:
        """Log records have no ids: an identical request within the window replays the first answer."""
        import datetime as dt

        tel = Telemetry()
        q = QueuedExporter("ch", RecordingExporter(), tel.component("ch"),
                           QueueSettings(max_delay_s=60, batch_rows=10**6))
        p = Pipeline("logs", Signal.LOGS, [], [q], tel.component("p"), retention={"ch": dt.timedelta(days=30)})
        now = time.time_ns()
        logs = Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {
            "body": ["a", "b", "c"], "timestamp": [now, now, now - 40 * 86_400 * 10**9]}))
        first = p.consume(logs)
        assert (first.dropped, dict(first.reasons)) == (1, {"older_than_retention": 1})
        assert p.consume(logs) == first
        assert q.queued_rows == 2
        assert tel.total("sovtel_dropped_records_total", component="p", reason="duplicate") == 2


def pa_concat(*batches: Batch) -> Batch:
    return batches[0].replace(pa.concat_tables([b.table for b in batches]))
