"""Adversarial scenario: malformed spans among good ones, and spans with times a store would silently drop.

A real collector (OTLP receiver over gRPC and HTTP → minimise → clickhouse exporter on the embedded
engine) on 127.0.0.1 is fed by the OpenTelemetry SDK's exporters and by raw OTLP requests holding a
span with a 3-byte trace id, a span nested too deeply, spans dated 0, 2^64-1 and the year 2300, and
a span older than the sink's retention. The client must be told exactly what was rejected (OTLP
partial success); every good span must be stored; and every acknowledged span must still be in
the store after the engine applies its TTL: nothing is acknowledged and then dropped.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sovtel.pipeline import Service
from storage.backend import open_store
from tests.collectors.otlp.builders import add_attributes, otlp_json
from tests.e2e.adversarial.helpers import running

RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local"}
DAY_NS = 86_400 * 10**9
YEAR_2300 = int(datetime(2300, 1, 1, tzinfo=UTC).timestamp()) * 10**9
# Times a store's TTL would drop right after the write, and whether the collector keeps the span.
BAD_TIMES = {"zero": 0, "max": 2**64 - 1, "year 2300": YEAR_2300}
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def collector(chdb_dsn: str, unique_db: str) -> Iterator[Service]:
    """OTLP (gRPC + HTTP) → minimise → clickhouse with a 30-day personal retention, on 127.0.0.1."""
    with running({
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"},
                                                 "http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"minimise": {}},
            "exporters": {"clickhouse": {"dsn": chdb_dsn, "database": unique_db, "aiact_database": f"{unique_db}_aiact",
                                         "retention": {"personal_days": 30}, "queue": {"max_delay_s": 0.05}}},
            "service": {"telemetry": {"metrics": {"enabled": False}},
                        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                                 "exporters": ["clickhouse"]}}},
    }) as (svc, _port):
        yield svc


def stored_spans(dsn: str, db: str, *, apply_ttl: bool = False) -> dict[str, tuple[int, str]]:
    """span id → (timestamp ns, original time attribute or '') of every stored span; ``apply_ttl`` first
    makes the engine apply the table's TTL now (it would otherwise wait for a merge)."""
    store = open_store({"dsn": dsn})
    try:
        if apply_ttl:
            store.command(f"ALTER TABLE {db}.spans MATERIALIZE TTL SETTINGS mutations_sync = 2")
            store.command(f"OPTIMIZE TABLE {db}.spans FINAL")
        rows = store.query_rows(
            f"SELECT span_id, toUnixTimestamp64Nano(timestamp), span_attributes['sovtel.original_time_unix_nano'] "
            f"FROM {db}.spans"
        )
        return {str(s): (int(t), str(o)) for s, t, o in rows}
    finally:
        store.close()


def span(req: ExportTraceServiceRequest, number: int, start: int) -> Any:
    """Append a chat span numbered ``number`` (ids derived from it) starting at ``start``."""
    sp = req.resource_spans[0].scope_spans[0].spans.add()
    sp.trace_id = number.to_bytes(16, "big")
    sp.span_id = (0xABC0_0000_0000_0000 + number).to_bytes(8, "big")
    sp.name = "chat llama"
    sp.start_time_unix_nano = start
    sp.end_time_unix_nano = start + 1_000_000 if start < 2**64 - 1_000_000 else start
    add_attributes(sp.attributes, {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": number})
    return sp


def adversarial_request(now: int, json_safe: bool) -> tuple[ExportTraceServiceRequest, dict[str, str]]:
    """Ten good spans, the three bad times, one span 400 days old and two malformed spans.

    Returns the request and span id → what the collector must do with it (keep, clamp, reject:<why>).
    """
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    add_attributes(rs.resource.attributes, RESOURCE)
    rs.scope_spans.add()
    fate: dict[str, str] = {}
    for i in range(10):
        fate[span(req, i + 1, now - (i + 1) * 10**9).span_id.hex()] = "keep"
    for j, t in enumerate(BAD_TIMES.values()):
        fate[span(req, 100 + j, t).span_id.hex()] = "clamp"
    fate[span(req, 200, now - 400 * DAY_NS).span_id.hex()] = "reject:older_than_retention"
    bad_id = span(req, 300, now - 10**9)
    bad_id.trace_id = b"abc"
    fate[bad_id.span_id.hex()] = "reject:spans[14].traceId: must be 16 bytes, got 3"
    if not json_safe:  # protobuf's JSON mapping cannot even write this span
        deep = span(req, 301, now - 10**9)
        value = AnyValue(string_value="bottom")
        for _ in range(150):
            outer = AnyValue()
            outer.kvlist_value.values.add(key="k").value.CopyFrom(value)
            value = outer
        deep.attributes.add(key="deep").value.CopyFrom(value)
        fate[deep.span_id.hex()] = "reject:spans[15]: not a valid Span (nested too deeply)"
    return req, fate


def send(svc: Service, transport: str, req: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    """Send ``req`` by ``transport`` as a client would, and read the answer (which must be a success)."""
    receiver: Any = svc.receivers["otlp"]
    if transport == "grpc":
        with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
            return ExportTraceServiceResponse.FromString(
                channel.unary_unary(TRACE_METHOD)(req.SerializeToString(), timeout=30)
            )
    json_body = transport == "http-json"
    body = json.dumps(otlp_json(req)).encode() if json_body else req.SerializeToString()
    content_type = "application/json" if json_body else "application/x-protobuf"
    conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        answer = resp.read()
        assert resp.status == 200, answer
    finally:
        conn.close()
    if json_body:
        return json_format.Parse(answer, ExportTraceServiceResponse())
    return ExportTraceServiceResponse.FromString(answer)


@pytest.mark.parametrize("transport", ["http-protobuf", "http-json", "grpc"])
def test_raw_requests_are_answered_exactly_and_every_acknowledged_span_stays_stored(
    collector: Service, chdb_dsn: str, unique_db: str, transport: str
) -> None:
    """Good and clamped spans are stored; the malformed and the too old are reported rejected, each with why."""
    before = time.time_ns()
    req, fate = adversarial_request(before, json_safe=transport == "http-json")
    response = send(collector, transport, req)
    after = time.time_ns()
    rejected = {s: f.removeprefix("reject:") for s, f in fate.items() if f.startswith("reject:")}
    assert response.partial_success.rejected_spans == len(rejected)
    message = response.partial_success.error_message
    for why in rejected.values():
        assert why.replace("spans[", "resourceSpans[0].scopeSpans[0].spans[") in message or why in message, message
    assert "timestamp_clamped:zero: 1" in message and "timestamp_clamped:future: 2" in message

    assert collector.flush(30)
    acknowledged = {s for s, f in fate.items() if not f.startswith("reject:")}
    assert set(stored_spans(chdb_dsn, unique_db)) == acknowledged
    # The engine applies its TTL now: every acknowledged span is still there.
    stored = stored_spans(chdb_dsn, unique_db, apply_ttl=True)
    assert set(stored) == acknowledged
    originals = {str(t) for t in BAD_TIMES.values()}
    clamped = {s: stored[s] for s, f in fate.items() if f == "clamp"}
    assert all(before <= t <= after for t, _o in clamped.values())
    assert {o for _t, o in clamped.values()} == originals


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_spans_with_bad_times_are_kept_and_the_old_one_is_not_acknowledged_silently(
    collector: Service, chdb_dsn: str, unique_db: str, transport: str
) -> None:
    """The SDK's own exporters: spans dated 0, 2^64-1 and 2300 are stored at their receive time; normal spans
    as sent; a span older than the retention is not stored (and the collector counts it)."""
    receiver: Any = collector.receivers["otlp"]
    exporter = (
        GrpcExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True, timeout=30)
        if transport == "grpc"
        else HttpExporter(endpoint=f"http://127.0.0.1:{receiver.http_port}/v1/traces", timeout=30)
    )
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("adversarial")
    now = time.time_ns()
    expected: dict[str, int | None] = {}  # span id → stored timestamp (None: the receive time)
    try:
        for i in range(5):
            sp = tracer.start_span(f"chat {i}", start_time=now - (i + 1) * 10**9)
            sp.end(end_time=now - i * 10**9)
            expected[format(sp.get_span_context().span_id, "016x")] = now - (i + 1) * 10**9
        for name, t in BAD_TIMES.items():
            sp = tracer.start_span(f"bad time {name}", start_time=t)
            sp.end(end_time=t)
            expected[format(sp.get_span_context().span_id, "016x")] = None
        old = tracer.start_span("too old", start_time=now - 400 * DAY_NS)
        old.end(end_time=now - 400 * DAY_NS + 10**6)
    finally:
        provider.shutdown()
    after = time.time_ns()
    assert collector.flush(30)
    stored = stored_spans(chdb_dsn, unique_db, apply_ttl=True)
    assert set(stored) == set(expected)
    for span_id, t in expected.items():
        if t is None:
            assert now <= stored[span_id][0] <= after
        else:
            assert stored[span_id] == (t, "")
    dropped = collector.telemetry.total("sovtel_dropped_records_total", reason="older_than_retention")
    assert dropped == 1
