"""OTLP partial success: one bad record among good ones costs only itself, for every signal and transport.

The good records are kept; the answer is 200 / OK with ``rejected_<records>`` and a message naming
the first bad ones, where they are and why. A request with nothing to keep stays a 400 /
INVALID_ARGUMENT; rows the pipeline drops are added to the count, with the pipeline's reasons.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collectors.otlp.decode import DecodeError, decode_request
from collectors.otlp.ingest import Encoding, Ingest, Status
from collectors.otlp.otlp_json import decode_json_request
from sovtel.component import Accepted
from sovtel.records import Batch, Signal
from sovtel.telemetry import Telemetry
from tests.collectors.otlp import wireformat as wf
from tests.collectors.otlp.builders import genai_request, logs_request, metrics_request, otlp_json

SPAN = "resourceSpans[0].scopeSpans[0].spans"
LOG = "resourceLogs[0].scopeLogs[0].logRecords"
METRIC = "resourceMetrics[0].scopeMetrics[0].metrics"
NOW = 1_700_000_100_000_000_000  # a receive time just after the builders' record times


def deep_value(levels: int) -> AnyValue:
    """An AnyValue of key-value lists nested ``levels`` deep (beyond protobuf's nesting limit at 100)."""
    value = AnyValue(string_value="bottom")
    for _ in range(levels):
        outer = AnyValue()
        outer.kvlist_value.values.add(key="k").value.CopyFrom(value)
        value = outer
    return value


def with_bad_utf8(message: Message, marker: str) -> bytes:
    """``message`` serialized with the string ``marker`` (8 characters) replaced by invalid UTF-8."""
    assert len(marker) == 8
    return message.SerializeToString().replace(marker.encode(), b"BAD-\xff\xfe\xfd!", 1)


def traces(change: Callable[[Any], None]) -> ExportTraceServiceRequest:
    """Four GenAI spans; ``change`` spoils the third."""
    req = genai_request(4)
    change(req.resource_spans[0].scope_spans[0].spans[2])
    return req


def logs(change: Callable[[Any], None]) -> ExportLogsServiceRequest:
    """Four log records; ``change`` spoils the second."""
    req = logs_request(4)
    change(req.resource_logs[0].scope_logs[0].log_records[1])
    return req


def metrics(change: Callable[[Any], None]) -> ExportMetricsServiceRequest:
    """A gauge of four points, then a histogram of two; ``change`` spoils something of the histogram."""
    req = metrics_request(4)
    hist = req.resource_metrics[0].scope_metrics[0].metrics.add(name="latency", unit="s")
    for i in range(2):
        p = hist.histogram.data_points.add(time_unix_nano=1_700_000_000_000_000_000 + i, count=3, sum=1.5)
        p.explicit_bounds.extend([0.1, 1.0])
        p.bucket_counts.extend([1, 1, 1])
    change(hist)
    return req


def set_name(marker: str) -> Callable[[Any], None]:
    def change(record: Any) -> None:
        record.name = marker
    return change


def set_body(marker: str) -> Callable[[Any], None]:
    def change(record: Any) -> None:
        record.body.string_value = marker
    return change


def deep_attribute(record: Any) -> None:
    record.attributes.add(key="deep").value.CopyFrom(deep_value(150))


def deep_point_attribute(metric: Any) -> None:
    metric.histogram.data_points[1].attributes.add(key="deep").value.CopyFrom(deep_value(150))


def uneven_buckets(metric: Any) -> None:
    metric.histogram.data_points[0].bucket_counts.append(7)


# (case, signal, serialized request, records kept, records rejected, words of the first reason)
PROTOBUF_CASES: list[tuple[str, Signal, bytes, int, int, str]] = [
    ("3-byte trace id", Signal.TRACES, traces(lambda s: setattr(s, "trace_id", b"abc")).SerializeToString(), 3, 1,
     f"{SPAN}[2].traceId: must be 16 bytes, got 3"),
    ("9-byte span id", Signal.TRACES, traces(lambda s: setattr(s, "span_id", b"\x01" * 9)).SerializeToString(), 3, 1,
     f"{SPAN}[2].spanId: must be 8 bytes, got 9"),
    ("3-byte parent id", Signal.TRACES,
     traces(lambda s: setattr(s, "parent_span_id", b"\x01" * 3)).SerializeToString(), 3, 1,
     f"{SPAN}[2].parentSpanId: must be 8 bytes, got 3"),
    ("invalid UTF-8 in a span name", Signal.TRACES, with_bad_utf8(traces(set_name("BAD-NAME")), "BAD-NAME"), 3, 1,
     f"{SPAN}[2]: not a valid Span (invalid UTF-8 in a string field)"),
    ("attribute nested too deeply", Signal.TRACES, traces(deep_attribute).SerializeToString(), 3, 1,
     f"{SPAN}[2]: not a valid Span (nested too deeply)"),
    ("corrupt event", Signal.TRACES,
     wf.trace_request(wf.span(), wf.span(wf.field(11, wf.LEN, b"\x12\x7f")), wf.span()), 2, 1,
     f"{SPAN}[1]: not a valid Span"),
    ("3-byte trace id on a log record", Signal.LOGS,
     logs(lambda r: setattr(r, "trace_id", b"abc")).SerializeToString(), 3, 1,
     f"{LOG}[1].traceId: must be 16 bytes, got 3"),
    ("invalid UTF-8 in a log body", Signal.LOGS, with_bad_utf8(logs(set_body("BAD-BODY")), "BAD-BODY"), 3, 1,
     f"{LOG}[1]: not a valid LogRecord (invalid UTF-8 in a string field)"),
    ("log attribute nested too deeply", Signal.LOGS, logs(deep_attribute).SerializeToString(), 3, 1,
     f"{LOG}[1]: not a valid LogRecord (nested too deeply)"),
    ("histogram with uneven buckets", Signal.METRICS, metrics(uneven_buckets).SerializeToString(), 5, 1,
     f"{METRIC}[1].histogram.dataPoints[0]: 4 bucket counts for 2 explicit bounds"),
    ("data point attribute nested too deeply", Signal.METRICS, metrics(deep_point_attribute).SerializeToString(), 5,
     1, f"{METRIC}[1].histogram.dataPoints[1]: not a valid HistogramDataPoint (nested too deeply)"),
    ("invalid UTF-8 in a metric name", Signal.METRICS, with_bad_utf8(metrics(set_name("BAD-NAME")), "BAD-NAME"), 4,
     2, f"{METRIC}[1].name: invalid UTF-8 (its 2 data point(s) rejected)"),
]  # fmt: skip


class TestDecodeKeepsTheGoodRecords:
    @pytest.mark.parametrize(("case", "signal", "payload", "kept", "rejected", "reason"), PROTOBUF_CASES,
                             ids=[c[0] for c in PROTOBUF_CASES])
    @pytest.mark.parametrize("exact", [False, True])
    def test_one_bad_record_is_rejected_with_its_place(self, case, signal, payload, kept, rejected, reason, exact):
        """The bad record is rejected with where and why; every other record is decoded as usual."""
        decoded = decode_request(signal, payload, received_ns=NOW, exact=exact)
        assert (decoded.table.num_rows, decoded.rejected) == (kept, rejected)
        assert reason in decoded.reasons[0]
        assert sum(decoded.rejected_by.values()) == rejected

    def test_the_good_spans_are_exactly_the_others(self):
        """The rows kept are the good spans, in order, with their own ids."""
        req = traces(lambda s: setattr(s, "trace_id", b"abc"))
        spans = req.resource_spans[0].scope_spans[0].spans
        decoded = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW)
        assert decoded.table["span_id"].to_pylist() == [spans[i].span_id.hex() for i in (0, 1, 3)]

    def test_only_the_first_reasons_are_quoted_but_all_are_counted(self):
        """Twenty bad spans are all counted; the message quotes the first five in request order."""
        req = genai_request(30)
        for i, sp in enumerate(req.resource_spans[0].scope_spans[0].spans):
            if i % 3 == 0 and i < 60:
                sp.span_id = b"\x01"
        decoded = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW)
        assert (decoded.rejected, decoded.table.num_rows) == (10, 20)
        assert [r.split(":")[0] for r in decoded.reasons] == [f"{SPAN}[{i}].spanId" for i in (0, 3, 6, 9, 12)]
        assert decoded.summary("spans").endswith("; and 5 more")

    @pytest.mark.parametrize(
        ("signal", "payload", "words"),
        [
            (Signal.TRACES, traces(lambda s: None).SerializeToString()[:-7], "not a valid protobuf"),
            (Signal.TRACES, b"\xff\x00garbage", "not a valid protobuf"),
            (Signal.TRACES, wf.trace_request(wf.span(trace_id=b"\x01")), "spans[0].traceId: must be 16 bytes"),
            (Signal.TRACES, wf.trace_request(wf.span(wf.field(5, wf.LEN, b"\xff"))), "invalid UTF-8"),
            (Signal.LOGS, wf.log_request(wf.field(9, wf.LEN, b"\x01")), "logRecords[0].traceId"),
            (Signal.METRICS, b"\x0a\x03\x12\x01", "not a valid protobuf"),
        ],
    )
    def test_a_request_with_nothing_to_keep_is_an_error(self, signal, payload, words):
        """A request that cannot be parsed, or whose every record is bad, is a DecodeError saying why."""
        with pytest.raises(DecodeError, match=re.escape(words)):
            decode_request(signal, payload, received_ns=NOW)


def _json(message: Message) -> dict[str, Any]:
    return otlp_json(message)


def json_traces(change: Callable[[dict[str, Any]], None]) -> bytes:
    data = _json(genai_request(4))
    change(data["resourceSpans"][0]["scopeSpans"][0]["spans"][2])
    return json.dumps(data).encode()


def json_spans(change: Callable[[list[Any]], None]) -> bytes:
    data = _json(genai_request(4))
    change(data["resourceSpans"][0]["scopeSpans"][0]["spans"])
    return json.dumps(data).encode()


def json_logs(change: Callable[[dict[str, Any]], None]) -> bytes:
    data = _json(logs_request(4))
    change(data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1])
    return json.dumps(data).encode()


def json_metrics(change: Callable[[dict[str, Any]], None]) -> bytes:
    data = _json(metrics(lambda m: None))
    change(data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1])
    return json.dumps(data).encode()


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj.__setitem__(key, value)


def _point(i: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda metric: metric["histogram"]["dataPoints"][i].__setitem__(key, value)


JSON_CASES: list[tuple[str, Signal, bytes, int, int, str]] = [
    ("3-byte trace id", Signal.TRACES, json_traces(_set("traceId", "abcdef")), 3, 1,
     f"{SPAN}[2].traceId: must be 16 bytes, got 3"),
    ("trace id that is not hex", Signal.TRACES, json_traces(_set("traceId", "xyz")), 3, 1,
     f"{SPAN}[2].traceId: 'xyz' is not a hex string"),
    ("name that is a number", Signal.TRACES, json_traces(_set("name", 7)), 3, 1, f"{SPAN}[2]: at name"),
    ("start time that is not a number", Signal.TRACES, json_traces(_set("startTimeUnixNano", "soon")), 3, 1,
     f"{SPAN}[2]: at startTimeUnixNano"),
    ("span that is not an object", Signal.TRACES, json_spans(lambda spans: spans.__setitem__(2, 7)), 3, 1,
     f"{SPAN}[2]: must be a JSON object, got int"),
    ("span id that is not hex on a log record", Signal.LOGS, json_logs(_set("spanId", "zz")), 3, 1,
     f"{LOG}[1].spanId: 'zz' is not a hex string"),
    ("log body of the wrong type", Signal.LOGS, json_logs(_set("body", {"stringValue": 5})), 3, 1,
     f"{LOG}[1]: at body"),
    ("data point value of the wrong type", Signal.METRICS, json_metrics(_point(1, "sum", "lots")), 5, 1,
     f"{METRIC}[1].histogram.dataPoints[1]: Couldn't parse float: lots"),
    ("histogram with uneven buckets", Signal.METRICS, json_metrics(_point(0, "bucketCounts", ["1", "2"])), 5, 1,
     f"{METRIC}[1].histogram.dataPoints[0]: 2 bucket counts for 2 explicit bounds"),
    ("metric unit of the wrong type", Signal.METRICS, json_metrics(_set("unit", [1])), 4, 2,
     f"{METRIC}[1]: at unit"),
]  # fmt: skip


class TestJsonKeepsTheGoodRecords:
    @pytest.mark.parametrize(("case", "signal", "body", "kept", "rejected", "reason"), JSON_CASES,
                             ids=[c[0] for c in JSON_CASES])
    def test_one_bad_record_is_rejected_with_its_place(self, case, signal, body, kept, rejected, reason):
        """OTLP/JSON: the bad record is rejected with where and why; the others are kept."""
        decoded = decode_json_request(signal, body, received_ns=NOW)
        assert (decoded.table.num_rows, decoded.rejected) == (kept, rejected)
        if rejected:
            assert reason in decoded.reasons[0]

    def test_json_and_protobuf_keep_the_same_rows(self):
        """A request with one bad trace id keeps the same rows whether sent as protobuf or JSON."""
        req = traces(lambda s: setattr(s, "trace_id", b"abc"))
        from_protobuf = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW)
        from_json = decode_json_request(Signal.TRACES, json.dumps(_json(req)).encode(), received_ns=NOW)
        assert from_json.table.equals(from_protobuf.table)
        assert from_json.reasons == from_protobuf.reasons

    def test_a_bad_scope_rejects_its_records_only(self):
        """A scope that does not parse rejects its own records, not those of the other scopes."""
        data = _json(genai_request(2))
        other = copy.deepcopy(data["resourceSpans"][0]["scopeSpans"][0])
        other["schemaUrl"] = 5
        data["resourceSpans"][0]["scopeSpans"].append(other)
        decoded = decode_json_request(Signal.TRACES, json.dumps(data).encode(), received_ns=NOW)
        assert (decoded.table.num_rows, decoded.rejected) == (2, 2)
        assert decoded.reasons[0].startswith("resourceSpans[0].scopeSpans[1]: at schemaUrl")


# ----------------------------------------------------------------------------- through the receivers

RESPONSES: dict[Signal, tuple[type[Message], str, str]] = {
    Signal.TRACES: (ExportTraceServiceResponse, "rejected_spans", "/v1/traces"),
    Signal.LOGS: (ExportLogsServiceResponse, "rejected_log_records", "/v1/logs"),
    Signal.METRICS: (ExportMetricsServiceResponse, "rejected_data_points", "/v1/metrics"),
}
GRPC_METHODS = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}
# One bad record per signal that both encodings can carry: (request, records kept, first reason).
ONE_BAD: dict[Signal, tuple[Message, int, str]] = {
    Signal.TRACES: (traces(lambda s: setattr(s, "trace_id", b"abc")), 3, f"{SPAN}[2].traceId: must be 16 bytes"),
    Signal.LOGS: (logs(lambda r: setattr(r, "span_id", b"ab")), 3, f"{LOG}[1].spanId: must be 8 bytes, got 2"),
    Signal.METRICS: (metrics(uneven_buckets), 5, f"{METRIC}[1].histogram.dataPoints[0]: 4 bucket counts"),
}


def post(port: int, signal: Signal, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", RESPONSES[signal][2], body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def export(running: Any, transport: str, signal: Signal, request: Message) -> Message:
    """Send ``request`` by ``transport`` and return the parsed Export*ServiceResponse (200 / OK expected)."""
    cls = RESPONSES[signal][0]
    if transport == "grpc":
        with grpc.insecure_channel(running.grpc_target) as channel:
            answer = channel.unary_unary(GRPC_METHODS[signal])(request.SerializeToString(), timeout=10)
        return cls.FromString(answer)
    if transport == "http-protobuf":
        status, body = post(running.receiver.http_port, signal, request.SerializeToString(), "application/x-protobuf")
        assert status == 200, body
        return cls.FromString(body)
    status, body = post(running.receiver.http_port, signal, json.dumps(_json(request)).encode(), "application/json")
    assert status == 200, body
    return json_format.Parse(body, cls())


def dropped_total(telemetry: Telemetry, signal: Signal, reason: str) -> float:
    return telemetry.total("sovtel_dropped_records_total", component="otlp", signal=signal.value, reason=reason)


@pytest.mark.parametrize("transport", ["http-protobuf", "http-json", "grpc"])
@pytest.mark.parametrize("signal", list(Signal))
def test_receivers_answer_partial_success(start_receiver, transport, signal):
    """Over HTTP (protobuf, JSON) and gRPC, for every signal: the good records arrive, the bad one is reported."""
    running = start_receiver()
    request, kept, reason = ONE_BAD[signal]
    response: Any = export(running, transport, signal, request)
    rejected_field = RESPONSES[signal][1]
    assert getattr(response.partial_success, rejected_field) == 1
    assert reason in response.partial_success.error_message
    assert running.consumers[signal].rows == kept
    reason_counted = "invalid_histogram" if signal is Signal.METRICS else "invalid_id"
    assert dropped_total(running.telemetry, signal, reason_counted) == 1


@pytest.mark.parametrize("transport", ["http-protobuf", "grpc"])
def test_a_request_with_only_bad_records_stays_invalid(start_receiver, transport):
    """Nothing to keep is not a partial success: 400 / INVALID_ARGUMENT, and nothing arrives."""
    running = start_receiver()
    payload = wf.trace_request(wf.span(trace_id=b"abc"), wf.span(span_id=b"x"))
    if transport == "grpc":
        with grpc.insecure_channel(running.grpc_target) as channel, pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(GRPC_METHODS[Signal.TRACES])(payload, timeout=10)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "2 of 2 spans rejected" in err.value.details()
    else:
        status, _body = post(running.receiver.http_port, Signal.TRACES, payload, "application/x-protobuf")
        assert status == 400
    assert running.traces.rows == 0


class DroppingConsumer:
    """A consumer that keeps every batch and reports some rows dropped, with a reason, as the runtime does."""

    def __init__(self, drop: int, reason: str) -> None:
        self.drop, self.reason = drop, reason
        self.batches: list[Batch] = []

    def consume(self, batch: Batch) -> Accepted:
        self.batches.append(batch)
        n = min(self.drop, batch.rows)
        return Accepted(accepted=batch.rows - n, dropped=n, reasons={self.reason: n} if n else {})


def test_rows_the_pipeline_drops_join_the_rejected_count():
    """Rows the pipeline drops (e.g. older than a sink's retention) are added to the rejected count, with why."""
    consumer = DroppingConsumer(2, "older_than_retention")
    ingest = Ingest(Telemetry().component("otlp"), {Signal.TRACES: consumer})
    request, _kept, reason = ONE_BAD[Signal.TRACES]
    outcome = ingest.handle(Signal.TRACES, request.SerializeToString(), Encoding.PROTOBUF, "test")
    assert outcome.status is Status.OK
    assert (outcome.accepted, outcome.dropped) == (1, 3)
    assert reason in outcome.message
    assert "2 of 3 spans were dropped by the pipeline (older_than_retention: 2)" in outcome.message


def test_a_refused_request_counts_nothing_it_would_count_when_accepted():
    """A request refused for back-pressure counts no rejected records (the client sends it again)."""
    from collectors.testing import InMemoryConsumer

    consumer = InMemoryConsumer()
    consumer.set_full(True)
    telemetry = Telemetry()
    ingest = Ingest(telemetry.component("otlp"), {Signal.TRACES: consumer})
    request, _kept, _reason = ONE_BAD[Signal.TRACES]
    outcome = ingest.handle(Signal.TRACES, request.SerializeToString(), Encoding.PROTOBUF, "test")
    assert outcome.status is Status.BACKPRESSURE
    assert dropped_total(telemetry, Signal.TRACES, "invalid_id") == 0


@pytest.mark.parametrize("transport", ["http-protobuf", "http-json", "grpc"])
def test_changes_to_kept_records_are_told_as_a_warning(start_receiver, transport):
    """A replaced time keeps every span and is told as a partial-success warning: 0 rejected, a message."""
    running = start_receiver()
    request = genai_request(3)
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 0
    response: Any = export(running, transport, Signal.TRACES, request)
    assert response.partial_success.rejected_spans == 0
    assert "timestamp_clamped:zero: 1" in response.partial_success.error_message
    assert "sovtel.original_time_unix_nano" in response.partial_success.error_message
    assert running.traces.rows == 3
    removed = running.telemetry.total(
        "sovtel_removed_values_total", component="otlp", signal="traces", reason="timestamp_clamped:zero"
    )
    assert removed == 1


# ----------------------------------------------------------------------------- both paths agree

_SEEDS = [
    traces(lambda s: setattr(s, "trace_id", b"abc")).SerializeToString(),
    logs(lambda r: setattr(r, "span_id", b"ab")).SerializeToString(),
    genai_request(5).SerializeToString(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A request (some with a bad record already) with a few bytes flipped, cut or inserted."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=3))
        elif data:
            del data[i]
    return bytes(data)


def _outcome(signal: Signal, payload: bytes, exact: bool) -> Any:
    try:
        d = decode_request(signal, payload, received_ns=NOW, exact=exact)
    except DecodeError as exc:
        return ("DecodeError", str(exc))
    return (d.table, d.rejected, d.reasons, dict(d.removed))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from([Signal.TRACES, Signal.LOGS]))
def test_partial_decoding_agrees_on_both_paths(payload, signal):
    """Corrupted requests keep the same records, and reject the same ones for the same reasons, on both paths."""
    fast, exact = _outcome(signal, payload, False), _outcome(signal, payload, True)
    if fast[0] == "DecodeError" or exact[0] == "DecodeError":
        assert fast[0] == exact[0] == "DecodeError"
        return
    assert fast[0].equals(exact[0])
    assert fast[1:] == exact[1:]
