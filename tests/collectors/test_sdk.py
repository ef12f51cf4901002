"""The in-process SDK exporter feeds a consumer directly, with the same batches as OTLP over the network."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExportResult

from collectors.otlp.decode import decode_traces
from collectors.sdk import SovtelSpanExporter
from collectors.testing import InMemoryConsumer
from sovtel.component import Accepted, Backpressure, Rejected
from sovtel.records import Batch, Signal
from tests.collectors.otlp.builders import emit_spans, token_sum, trace_ids


class _Exploding:
    def consume(self, batch: Batch) -> Accepted:
        raise RuntimeError("boom")


def test_spans_reach_the_consumer_like_over_otlp():
    """Spans exported in-process arrive as the same table the OTLP receivers would produce."""
    consumer = InMemoryConsumer()
    spans = emit_spans(SovtelSpanExporter(consumer), 50)
    table = consumer.table()
    assert sorted(table["trace_id"].to_pylist()) == trace_ids(spans)
    assert sum(table["input_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.input_tokens")
    assert table.equals(decode_traces(encode_spans(spans).SerializeToString()))
    assert consumer.batches[0].meta["transport"] == "sdk"


def test_backpressure_is_failure_without_raising():
    """A full pipeline makes export return FAILURE; it never raises into the SDK."""
    consumer = InMemoryConsumer()
    consumer.set_full(True)
    spans = emit_spans(SovtelSpanExporter(InMemoryConsumer()), 3)
    assert SovtelSpanExporter(consumer).export(spans) is SpanExportResult.FAILURE
    assert consumer.rows == 0


@pytest.mark.parametrize("consumer", [_Exploding(), None], ids=["consumer raises", "rejected"])
def test_other_failures_are_failure_without_raising(consumer):
    """A consumer that raises, or refuses for good, makes export return FAILURE."""
    if consumer is None:
        consumer = InMemoryConsumer()
        consumer.refuse_next(1, Rejected)
    spans = emit_spans(SovtelSpanExporter(InMemoryConsumer()), 2)
    assert SovtelSpanExporter(consumer).export(spans) is SpanExportResult.FAILURE


def test_retry_timeout_waits_for_room():
    """With a retry timeout, back-pressure is retried until the pipeline has room, and nothing is lost."""
    consumer = InMemoryConsumer()
    spans = emit_spans(SovtelSpanExporter(InMemoryConsumer()), 5)
    consumer.refuse_next(3, Backpressure)
    assert SovtelSpanExporter(consumer, retry_timeout_s=5).export(spans) is SpanExportResult.SUCCESS
    assert consumer.rows == 5 and consumer.refusals == 3


def test_shutdown_refuses_later_exports_and_cuts_back_off_short():
    """After shutdown exports fail at once, and a back-off in progress ends early."""
    consumer = InMemoryConsumer()
    consumer.set_full(True)
    spans = emit_spans(SovtelSpanExporter(InMemoryConsumer()), 2)
    exporter = SovtelSpanExporter(consumer, retry_timeout_s=30)
    result: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: result.append(exporter.export(spans)))
    worker.start()
    exporter.shutdown()
    worker.join(timeout=5)
    assert result == [SpanExportResult.FAILURE]
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True


def test_empty_export_succeeds():
    """Exporting no spans is a successful no-op."""
    consumer = InMemoryConsumer()
    assert SovtelSpanExporter(consumer).export([]) is SpanExportResult.SUCCESS
    assert consumer.batches == []


class TestInMemoryConsumer:
    def test_keeps_batches_and_reports_drops(self):
        """The test double keeps every batch and can report rows as dropped."""
        consumer = InMemoryConsumer()
        spans = emit_spans(SovtelSpanExporter(consumer), 4)
        assert consumer.rows == 4 and consumer.wait_for_rows(4, timeout=0.1)
        consumer.report_dropped(1)
        table = decode_traces(encode_spans(spans).SerializeToString())
        assert consumer.consume(Batch(Signal.TRACES, table)) == Accepted(accepted=3, dropped=1)
        assert consumer.table().num_rows == 8
        assert consumer.table(Signal.LOGS).num_rows == 0
        consumer.clear()
        assert consumer.rows == 0 and not consumer.wait_for_rows(1, timeout=0.05)

    def test_refuses_on_demand(self):
        """refuse_next makes the next calls raise the chosen refusal, then it accepts again."""
        consumer = InMemoryConsumer()
        batch = Batch(Signal.TRACES, decode_traces(b""))
        consumer.refuse_next(1, Backpressure)
        consumer.refuse_next(1, Rejected)
        with pytest.raises(Backpressure):
            consumer.consume(batch)
        with pytest.raises(Rejected):
            consumer.consume(batch)
        assert consumer.consume(batch) == Accepted(0)
        with pytest.raises(ValueError):
            consumer.refuse_next(1, KeyError)
