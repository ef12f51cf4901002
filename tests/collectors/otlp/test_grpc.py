"""OTLP/gRPC: real SDK exporters in, gRPC status codes out, and no input that breaks the server."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sovtel.component import Rejected
from sovtel.records import Signal
from tests.collectors.otlp import wireformat as wf
from tests.collectors.otlp.builders import (
    SMALL_LIMIT,
    emit_spans,
    genai_request,
    logs_request,
    metrics_request,
    received,
    refused,
    token_sum,
    trace_ids,
)
from tests.collectors.otlp.conftest import Running
from tests.collectors.otlp.sdk_signals import emit_logs, emit_metrics

METHODS = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


def call(running: Running, payload: bytes, signal: Signal = Signal.TRACES, method: str | None = None) -> bytes:
    """One raw Export call (bytes in, bytes out), so tests can send what no SDK would."""
    with grpc.insecure_channel(running.grpc_target) as channel:
        export = channel.unary_unary(method or METHODS[signal])
        return export(payload, timeout=10)  # type: ignore[no-any-return]


def send_valid(running: Running) -> None:
    """A valid request is accepted and all of its spans arrive."""
    before = running.traces.rows
    call(running, genai_request(3, seed=before).SerializeToString())
    assert running.traces.rows == before + 3


class TestSdkExporters:
    @pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
    def test_spans_from_the_sdk_arrive_complete(self, start_receiver, compression):
        """Spans sent by the SDK's OTLP/gRPC exporter arrive with the same trace ids and token totals."""
        running = start_receiver()
        exporter = OTLPSpanExporter(endpoint=running.grpc_target, insecure=True, compression=compression, timeout=10)
        spans = emit_spans(exporter, 60)
        table = running.traces.table()
        assert sorted(table["trace_id"].to_pylist()) == trace_ids(spans)
        assert sum(table["input_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.input_tokens")
        assert sum(table["output_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.output_tokens")
        assert received(running.telemetry, "traces") == 60

    def test_logs_and_metrics_from_the_sdk(self, start_receiver):
        """Log records and metric points from the SDK's gRPC exporters arrive as rows."""
        running = start_receiver()
        emit_logs(OTLPLogExporter(endpoint=running.grpc_target, insecure=True, timeout=10), 4)
        emit_metrics(OTLPMetricExporter(endpoint=running.grpc_target, insecure=True, timeout=10))
        logs = running.consumers[Signal.LOGS].table(Signal.LOGS)
        assert sorted(logs["user_id"].to_pylist()) == [f"user-{i}" for i in range(4)]
        metrics = running.consumers[Signal.METRICS].table(Signal.METRICS)
        histogram = [r for r in metrics.to_pylist() if r["metric_name"] == "gen_ai.client.token.usage"]
        assert {r["tenant_id"] for r in histogram} == {"acme"}
        assert sum(r["sum"] for r in histogram) == 150

    def test_sdk_retries_after_backpressure_and_loses_nothing(self, start_receiver):
        """The SDK exporter retries RESOURCE_EXHAUSTED, so every span arrives once the pipeline has room."""
        running = start_receiver()
        running.traces.refuse_next(2)
        spans = emit_spans(OTLPSpanExporter(endpoint=running.grpc_target, insecure=True, timeout=10), 30)
        assert sorted(running.traces.table()["trace_id"].to_pylist()) == trace_ids(spans)
        assert refused(running.telemetry, "backpressure") == 2


class TestAnswers:
    def test_success_returns_an_empty_response(self, start_receiver):
        """A successful export returns an empty ExportTraceServiceResponse."""
        running = start_receiver()
        assert ExportTraceServiceResponse.FromString(call(running, genai_request(2).SerializeToString())) == (
            ExportTraceServiceResponse()
        )

    def test_dropped_rows_are_reported_as_partial_success(self, start_receiver):
        """Rows the pipeline dropped are reported in partial_success."""
        running = start_receiver()
        running.traces.report_dropped(1)
        response = ExportTraceServiceResponse.FromString(call(running, genai_request(4).SerializeToString()))
        assert response.partial_success.rejected_spans == 1

    def test_empty_request_is_accepted(self, start_receiver):
        """An empty export request (zero bytes on the wire) is a valid no-op."""
        running = start_receiver()
        assert call(running, b"") == b""
        assert running.traces.rows == 0

    def test_backpressure_is_resource_exhausted_with_retry_info(self, start_receiver):
        """A full pipeline answers RESOURCE_EXHAUSTED carrying RetryInfo, and is counted."""
        running = start_receiver(retry_after_s=2)
        running.traces.set_full(True)
        with pytest.raises(grpc.RpcError) as err:
            call(running, genai_request(2).SerializeToString())
        running.traces.set_full(False)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(err.value.trailing_metadata())
        info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert info.retry_delay.seconds == 2
        rich = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert rich.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
        assert refused(running.telemetry, "backpressure") == 1
        send_valid(running)

    def test_rejected_is_failed_precondition(self, start_receiver):
        """Data the pipeline refuses for good gets FAILED_PRECONDITION (not retried by exporters)."""
        running = start_receiver()
        running.traces.refuse_next(1, Rejected)
        with pytest.raises(grpc.RpcError) as err:
            call(running, genai_request(1).SerializeToString())
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert refused(running.telemetry, "rejected") == 1
        send_valid(running)

    def test_signal_without_a_pipeline_is_unimplemented(self, start_receiver):
        """A signal this receiver is not wired to answers UNIMPLEMENTED, and is counted."""
        running = start_receiver(signals=(Signal.TRACES,))
        with pytest.raises(grpc.RpcError) as err:
            call(running, logs_request(1).SerializeToString(), Signal.LOGS)
        assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert "no logs pipeline" in err.value.details()
        assert refused(running.telemetry, "no_pipeline") == 1
        send_valid(running)


VALID = genai_request(4).SerializeToString()

# (case, payload, signal, expected code, counted reason or None, words in the details)
BAD_GRPC = [
    ("garbage bytes", b"\xff\x00garbage" * 8, Signal.TRACES, "INVALID_ARGUMENT", "bad_data", "not a valid protobuf"),
    ("truncated request", VALID[:-9], Signal.TRACES, "INVALID_ARGUMENT", "bad_data", "not a valid protobuf"),
    (
        "invalid UTF-8 in a span name",
        wf.trace_request(wf.span(wf.field(5, wf.LEN, b"\xc3\x28"))),
        Signal.TRACES,
        "INVALID_ARGUMENT",
        "bad_data",
        "UTF-8",
    ),
    (
        "span id of the wrong length",
        wf.trace_request(wf.span(span_id=b"\x01\x02")),
        Signal.TRACES,
        "INVALID_ARGUMENT",
        "bad_data",
        "spans[0].spanId: must be 8 bytes, got 2",
    ),
    ("JSON sent to gRPC", b'{"resourceSpans": []}', Signal.TRACES, "INVALID_ARGUMENT", "bad_data", "protobuf"),
    (
        "over max_message_bytes",
        genai_request(1, span_attributes=lambda _i: {"x": "y" * (SMALL_LIMIT + 1)}).SerializeToString(),
        Signal.TRACES,
        "RESOURCE_EXHAUSTED",
        "too_large",
        "exceeds max_message_bytes",
    ),
    (
        "over grpc's own hard limit",
        b"\0" * (2 * SMALL_LIMIT + 100),
        Signal.TRACES,
        "RESOURCE_EXHAUSTED",
        None,
        "",
    ),
    ("garbage logs", b"\x0a\xff\xff", Signal.LOGS, "INVALID_ARGUMENT", "bad_data", "ExportLogsServiceRequest"),
    (
        "truncated metrics",
        metrics_request(3).SerializeToString()[:-5],
        Signal.METRICS,
        "INVALID_ARGUMENT",
        "bad_data",
        "ExportMetricsServiceRequest",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "signal", "code", "reason", "words"), BAD_GRPC, ids=[c[0] for c in BAD_GRPC]
)
def test_bad_input_is_refused_counted_and_harmless(start_receiver, case, payload, signal, code, reason, words):
    """Each kind of bad input gets its gRPC status and a message, is counted, and the next request is served."""
    running = start_receiver()
    with pytest.raises(grpc.RpcError) as err:
        call(running, payload, signal)
    assert err.value.code().name == code
    assert words in (err.value.details() or "")
    if reason is not None:
        assert refused(running.telemetry, reason) == 1
    assert running.traces.rows == 0
    send_valid(running)


def test_unknown_method_is_unimplemented(start_receiver):
    """A method the receiver does not serve answers UNIMPLEMENTED and the server keeps serving."""
    running = start_receiver()
    with pytest.raises(grpc.RpcError) as err:
        call(running, VALID, method="/opentelemetry.proto.collector.trace.v1.TraceService/Nope")
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    send_valid(running)
