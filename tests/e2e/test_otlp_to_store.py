"""End to end: spans sent with the OpenTelemetry SDK over each OTLP transport are stored exactly once."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sovtel.config import parse_config
from sovtel.pipeline import Service
from storage.backend import open_store
from tests.collectors.otlp.builders import emit_spans, otlp_json, token_sum, trace_ids

N = 300


@pytest.fixture
def service(chdb_dsn: str, unique_db: str) -> Iterator[tuple[Service, Any]]:
    """A running pipeline: OTLP receiver → minimise → ClickHouse (the real embedded engine)."""
    cfg = parse_config({
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"},
                                             "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"minimise": {}},
        "exporters": {"clickhouse": {"dsn": chdb_dsn, "database": unique_db, "aiact_database": f"{unique_db}_aiact",
                                     "queue": {"max_delay_s": 0.2}}},
        "service": {"telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                             "exporters": ["clickhouse"]}}},
    })
    svc = Service(cfg)
    svc.start()
    try:
        yield svc, svc.receivers["otlp"]
    finally:
        svc.shutdown()


def stored(chdb_dsn: str, db: str) -> tuple[list[str], int, int, int]:
    store = open_store({"dsn": chdb_dsn})
    ids = [r[0] for r in store.query_rows(f"SELECT trace_id FROM {db}.spans ORDER BY trace_id")]
    (n, tin, tout), = store.query_rows(f"SELECT count(), sum(input_tokens), sum(output_tokens) FROM {db}.spans")
    return ids, int(n), int(tin), int(tout)


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
def test_n_spans_are_stored_as_n_rows(service: tuple[Service, Any], chdb_dsn: str, unique_db: str,
                                      transport: str) -> None:
    """N SDK spans over one OTLP transport become exactly N rows with the same trace ids and token sums."""
    svc, receiver = service
    if transport == "grpc":
        spans = emit_spans(GrpcExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True), N)
    elif transport == "http-protobuf":
        spans = emit_spans(HttpExporter(endpoint=f"http://127.0.0.1:{receiver.http_port}/v1/traces"), N)
    else:
        spans = emit_spans(InMemorySpanExporter(), N)
        body = json.dumps(otlp_json(encode_spans(spans))).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{receiver.http_port}/v1/traces", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    assert svc.flush(30)
    ids, n, tin, tout = stored(chdb_dsn, unique_db)
    assert n == N
    assert ids == trace_ids(spans)
    assert tin == token_sum(spans, "gen_ai.usage.input_tokens")
    assert tout == token_sum(spans, "gen_ai.usage.output_tokens")
