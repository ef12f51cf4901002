"""OTLP/HTTP: real SDK exporters in, spec-conformant answers out, and no input that breaks the server."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sovtel.component import Rejected
from sovtel.records import Signal
from tests.collectors.otlp import wireformat as wf
from tests.collectors.otlp.builders import (
    SMALL_LIMIT,
    emit_spans,
    genai_request,
    otlp_json,
    received,
    refused,
    token_sum,
    trace_ids,
)
from tests.collectors.otlp.conftest import Running
from tests.collectors.otlp.sdk_signals import emit_logs, emit_metrics

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def request(
    port: int, body: bytes = b"", headers: dict[str, str] | None = None, path: str = "/v1/traces", method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes and read one HTTP answer (for framing no client library would produce)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def status_message(headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """The google.rpc.Status of an error answer, in whichever encoding it came."""
    st = status_pb2.Status()
    if headers.get("content-type") == "application/x-protobuf":
        st.ParseFromString(body)
    else:
        json_format.Parse(body, st)
    return st.code, st.message


def send_valid(running: Running) -> None:
    """A valid request is accepted and all of its spans arrive."""
    before = running.traces.rows
    status, _h, _b = request(running.receiver.http_port, genai_request(3, seed=before).SerializeToString(), PROTOBUF)
    assert status == 200
    assert running.traces.rows == before + 3


class TestSdkExporters:
    @pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
    def test_spans_from_the_sdk_arrive_complete(self, start_receiver, compression):
        """Spans sent by the SDK's OTLP/HTTP exporter arrive with the same trace ids and token totals."""
        running = start_receiver()
        exporter = OTLPSpanExporter(endpoint=f"{running.http_url}/v1/traces", compression=compression, timeout=10)
        spans = emit_spans(exporter, 60)
        table = running.traces.table()
        assert sorted(table["trace_id"].to_pylist()) == trace_ids(spans)
        assert sum(table["input_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.input_tokens")
        assert sum(table["output_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.output_tokens")
        assert set(table["service_name"].to_pylist()) == {"chat-api"}
        assert received(running.telemetry, "traces") == 60

    def test_older_attribute_names_from_the_sdk(self, start_receiver):
        """Spans using the older GenAI names fill the same typed columns."""
        running = start_receiver()
        spans = emit_spans(OTLPSpanExporter(endpoint=f"{running.http_url}/v1/traces", timeout=10), 20, old_names=True)
        table = running.traces.table()
        assert sum(table["input_tokens"].to_pylist()) == token_sum(spans, "gen_ai.usage.prompt_tokens")
        assert set(table["provider"].to_pylist()) == {"vllm"}

    def test_json_of_the_same_spans_decodes_the_same(self, start_receiver):
        """The same SDK spans posted as OTLP/JSON give the same rows as the protobuf path."""
        running = start_receiver()
        spans = emit_spans(OTLPSpanExporter(endpoint=f"{running.http_url}/v1/traces", timeout=10), 25)
        from_protobuf = running.traces.table()
        running.traces.clear()
        body = json.dumps(otlp_json(encode_spans(spans))).encode()
        status, headers, answer = request(running.receiver.http_port, body, JSON)
        assert (status, headers["content-type"], json.loads(answer)) == (200, "application/json", {})
        from_json = running.traces.table()
        assert from_json.sort_by("span_id").equals(from_protobuf.sort_by("span_id"))

    def test_logs_and_metrics_from_the_sdk(self, start_receiver):
        """Log records and metric points from the SDK's HTTP exporters arrive as rows."""
        running = start_receiver()
        emit_logs(OTLPLogExporter(endpoint=f"{running.http_url}/v1/logs", timeout=10), 5)
        emit_metrics(OTLPMetricExporter(endpoint=f"{running.http_url}/v1/metrics", timeout=10))
        logs = running.consumers[Signal.LOGS].table(Signal.LOGS)
        assert sorted(logs["body"].to_pylist()) == [f"request {i} served" for i in range(5)]
        metrics = running.consumers[Signal.METRICS].table(Signal.METRICS)
        assert "gen_ai.client.token.usage" in metrics["metric_name"].to_pylist()


class TestAnswers:
    @pytest.mark.parametrize("headers", [PROTOBUF, JSON])
    def test_success_answer_in_the_request_encoding(self, start_receiver, headers):
        """A successful export is answered 200 with an empty Export*ServiceResponse in the request's encoding."""
        running = start_receiver()
        req = genai_request(2)
        body = req.SerializeToString() if headers is PROTOBUF else json.dumps(otlp_json(req)).encode()
        status, h, answer = request(running.receiver.http_port, body, headers)
        assert status == 200 and h["content-type"] == headers["Content-Type"]
        if headers is PROTOBUF:
            assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
        else:
            assert json.loads(answer) == {}

    def test_dropped_rows_are_reported_as_partial_success(self, start_receiver):
        """Rows the pipeline dropped are reported in partial_success with a message."""
        running = start_receiver()
        running.traces.report_dropped(2)
        status, _h, answer = request(running.receiver.http_port, genai_request(5).SerializeToString(), PROTOBUF)
        response = ExportTraceServiceResponse.FromString(answer)
        assert status == 200
        assert response.partial_success.rejected_spans == 2
        assert "2 of 5" in response.partial_success.error_message

    def test_backpressure_is_429_with_retry_after(self, start_receiver):
        """A full pipeline is answered 429 with Retry-After and a RESOURCE_EXHAUSTED status; it is counted."""
        running = start_receiver(retry_after_s=3)
        running.traces.refuse_next(1)
        status, headers, body = request(running.receiver.http_port, genai_request(2).SerializeToString(), PROTOBUF)
        assert (status, headers["retry-after"]) == (429, "3")
        code, message = status_message(headers, body)
        assert code == code_pb2.RESOURCE_EXHAUSTED and "retry later" in message
        assert refused(running.telemetry, "backpressure") == 1
        send_valid(running)

    def test_sdk_retries_after_backpressure_and_loses_nothing(self, start_receiver):
        """The SDK exporter retries 429 answers, so every span arrives once the pipeline has room."""
        running = start_receiver()
        running.traces.refuse_next(3)
        spans = emit_spans(OTLPSpanExporter(endpoint=f"{running.http_url}/v1/traces", timeout=10), 30)
        assert sorted(running.traces.table()["trace_id"].to_pylist()) == trace_ids(spans)
        assert refused(running.telemetry, "backpressure") == 3

    def test_rejected_is_400(self, start_receiver):
        """Data the pipeline refuses for good is answered 400 with the reason."""
        running = start_receiver()
        running.traces.refuse_next(1, Rejected)
        status, headers, body = request(running.receiver.http_port, genai_request(1).SerializeToString(), PROTOBUF)
        assert status == 400
        code, message = status_message(headers, body)
        assert code == code_pb2.FAILED_PRECONDITION and "refused" in message
        assert refused(running.telemetry, "rejected") == 1
        send_valid(running)

    @pytest.mark.parametrize("path", ["/v1/logs", "/v1/metrics"])
    def test_signal_without_a_pipeline_is_404(self, start_receiver, path):
        """A signal this receiver is not wired to is answered 404 and counted."""
        running = start_receiver(signals=(Signal.TRACES,))
        status, headers, body = request(running.receiver.http_port, b"\x0a\x00", PROTOBUF, path=path)
        assert status == 404
        assert "no " in status_message(headers, body)[1]
        assert refused(running.telemetry, "no_pipeline") == 1
        send_valid(running)

    def test_refusals_keep_the_connection_usable(self, start_receiver):
        """After refusals (bad data, wrong method, too large) the same kept-alive connection serves the next request."""
        running = start_receiver()
        conn = http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=10)
        try:
            for method, body, headers, expected in [
                ("POST", b"\xff\xff", PROTOBUF, 400),
                ("GET", b"", {}, 405),
                ("POST", b"x" * (SMALL_LIMIT + 1), PROTOBUF, 413),
                ("POST", genai_request(2).SerializeToString(), PROTOBUF, 200),
            ]:
                conn.request(method, "/v1/traces", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == expected
        finally:
            conn.close()
        assert running.traces.rows == 2


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


VALID = genai_request(4).SerializeToString()
BIG_ATTRIBUTE = genai_request(1, span_attributes=lambda _i: {"gen_ai.input.messages": "x" * (SMALL_LIMIT + 10)})
_chunk = b"%x\r\n" % len(VALID) + VALID + b"\r\n"

# (case, how to send it, expected HTTP status, counted reason, words in the message)
BAD_HTTP: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("truncated protobuf", {"body": VALID[: len(VALID) // 2]}, 400, "bad_data", "not a valid protobuf"),
    ("garbage bytes", {"body": b"\xff\x00garbage" * 8}, 400, "bad_data", "not a valid protobuf"),
    (
        "invalid UTF-8 in a span name",
        {"body": wf.trace_request(wf.span(wf.field(5, wf.LEN, b"\xff\xfe")))},
        400,
        "bad_data",
        "invalid UTF-8",
    ),
    (
        "trace id of the wrong length",
        {"body": wf.trace_request(wf.span(trace_id=b"\x01" * 15))},
        400,
        "bad_data",
        "spans[0].traceId: must be 16 bytes",
    ),
    ("empty body", {"body": b""}, 400, "bad_data", "empty request body"),
    ("invalid JSON", {"body": b'{"resourceSpans": [', "headers": JSON}, 400, "bad_data", "not valid JSON"),
    ("JSON that is not an object", {"body": b"[1]", "headers": JSON}, 400, "bad_data", "must be a JSON object"),
    (
        "wrong field type in JSON",
        {"body": b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}', "headers": JSON},
        400,
        "bad_data",
        "resourceSpans.scopeSpans.spans.name",
    ),
    (
        "invalid hex trace id in JSON",
        {"body": b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"00"}]}]}]}', "headers": JSON},
        400,
        "bad_data",
        "spans[0].traceId",
    ),
    ("deeply nested JSON", {"body": b"[" * 50_000 + b"]" * 50_000, "headers": JSON}, 400, "bad_data", "nested"),
    ("invalid UTF-8 in JSON", {"body": b'{"a": "\xc3\x28"}', "headers": JSON}, 400, "bad_data", "UTF-8"),
    (
        "wrong content type",
        {"body": VALID, "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
        "application/x-protobuf",
    ),
    ("no content type", {"body": VALID, "headers": {}}, 415, "unsupported_media_type", "(none)"),
    (
        "unsupported content encoding",
        {"body": VALID, "headers": {**PROTOBUF, "Content-Encoding": "br"}},
        415,
        "unsupported_encoding",
        "br",
    ),
    (
        "bad gzip",
        {"body": VALID, "headers": {**PROTOBUF, "Content-Encoding": "gzip"}},
        400,
        "bad_encoding",
        "not valid gzip",
    ),
    (
        "truncated gzip",
        {"body": _gzip(VALID)[:-12], "headers": {**PROTOBUF, "Content-Encoding": "gzip"}},
        400,
        "bad_encoding",
        "truncated",
    ),
    (
        "gzip bomb over the limit",
        {"body": _gzip(b"\0" * (40 * SMALL_LIMIT)), "headers": {**PROTOBUF, "Content-Encoding": "gzip"}},
        413,
        "too_large",
        "decompressed body exceeds",
    ),
    (
        "bad deflate",
        {"body": b"not deflate", "headers": {**PROTOBUF, "Content-Encoding": "deflate"}},
        400,
        "bad_encoding",
        "deflate",
    ),
    ("body over the limit", {"body": b"\0" * (SMALL_LIMIT + 1)}, 413, "too_large", "exceeds max_body_bytes"),
    (
        "huge attribute value over the limit",
        {"body": BIG_ATTRIBUTE.SerializeToString()},
        413,
        "too_large",
        "exceeds max_body_bytes",
    ),
    ("wrong path", {"body": VALID, "path": "/v1/trace"}, 404, "not_found", "/v1/traces"),
    ("root path", {"body": VALID, "path": "/"}, 404, "not_found", "no OTLP endpoint"),
    ("GET", {"method": "GET"}, 405, "method_not_allowed", "use POST"),
    ("PUT", {"method": "PUT", "body": VALID}, 405, "method_not_allowed", "use POST"),
    ("DELETE", {"method": "DELETE"}, 405, "method_not_allowed", "use POST"),
    (
        "invalid Content-Length",
        {"raw": b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: abc\r\n\r\n"},
        400,
        "bad_request",
        "Content-Length",
    ),
    (
        "malformed chunked body",
        {
            "raw": b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"
        },
        400,
        "bad_request",
        "chunked",
    ),
    ("garbage request line", {"raw": b"\x16\x03\x01 hello there\r\n\r\n"}, 400, "bad_request", ""),
    ("unknown method", {"raw": b"BREW /v1/traces HTTP/1.1\r\n\r\n"}, 501, "method_not_allowed", ""),
]


@pytest.mark.parametrize(("case", "send", "status", "reason", "words"), BAD_HTTP, ids=[c[0] for c in BAD_HTTP])
def test_bad_input_is_refused_counted_and_harmless(start_receiver, case, send, status, reason, words):
    """Each kind of bad input gets its 4xx status and a message, is counted, and the next request is served."""
    running = start_receiver()
    port = running.receiver.http_port
    if "raw" in send:
        got, headers, body = raw(port, send["raw"])
    else:
        got, headers, body = request(
            port,
            send.get("body", b""),
            send.get("headers", PROTOBUF),
            path=send.get("path", "/v1/traces"),
            method=send.get("method", "POST"),
        )
    assert got == status, body
    _code, message = status_message(headers, body)
    assert words in message
    assert refused(running.telemetry, reason) == 1
    assert running.traces.rows == 0
    send_valid(running)


def test_chunked_body_is_accepted(start_receiver):
    """A chunked request body is read and decoded like one with a Content-Length."""
    running = start_receiver()
    head = b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _headers, _body = raw(running.receiver.http_port, head + _chunk + b"0\r\n\r\n")
    assert status == 200 and running.traces.rows == 4


def test_gzip_members_back_to_back(start_receiver):
    """A gzip body of several members (allowed by RFC 1952) is decoded whole."""
    running = start_receiver()
    first, second = VALID[:100], VALID[100:]
    body = gzip.compress(first) + gzip.compress(second)
    status, _h, _b = request(running.receiver.http_port, body, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 200 and running.traces.rows == 4


def test_deflate_body(start_receiver):
    """A deflate (zlib) body is accepted."""
    running = start_receiver()
    body = zlib.compress(VALID)
    status, _h, _b = request(running.receiver.http_port, body, {**PROTOBUF, "Content-Encoding": "deflate"})
    assert status == 200 and running.traces.rows == 4
