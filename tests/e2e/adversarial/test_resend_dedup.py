"""Adversarial scenario: a client resends a request whose answer it lost, and sends spans older than the retention.

A real collector (OTLP/HTTP receiver → minimise → clickhouse exporter on the embedded engine, durable
queue) on 127.0.0.1. The client posts a request, drops the connection without reading the answer
once the collector has queued it (the lost response), and posts the very same bytes again: every
span must be stored once. Spans older than the sink's personal retention must be reported to the
client as rejected (OTLP partial success), not acknowledged and then deleted by the TTL.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors.otlp_client import span_request, trace_id_of
from sovtel.pipeline import Service
from storage.backend import open_store
from tests.e2e.adversarial.helpers import running
from tests.waiting import wait_until

RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local"}
PIPELINE = "pipeline/traces"
DAY_NS = 86_400 * 10**9


def config(dsn: str, db: str, data_dir: Path) -> dict[str, Any]:
    """One OTLP/HTTP receiver, minimise, one clickhouse sink (30-day personal retention) with a durable queue."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"minimise": {}},
        "exporters": {"clickhouse": {"dsn": dsn, "database": db, "aiact_database": f"{db}_aiact",
                                     "retention": {"personal_days": 30},
                                     "queue": {"durable": True, "batch_rows": 1000, "max_delay_s": 0.05}}},
        "service": {"data_dir": str(data_dir), "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                             "exporters": ["clickhouse"]}}},
    }


@pytest.fixture
def collector(chdb_dsn: str, unique_db: str, tmp_path: Path) -> Iterator[tuple[Service, int]]:
    """A running collector and its OTLP/HTTP port."""
    with running(config(chdb_dsn, unique_db, tmp_path)) as started:
        yield started


def post(port: int, body: bytes) -> tuple[int, bytes]:
    """POST an OTLP/HTTP protobuf request and read the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_and_lose_the_answer(svc: Service, port: int, body: bytes, spans: int) -> None:
    """Send the request, wait until the collector queued it, and hang up without reading the answer."""
    before = svc.telemetry.total("sovtel_queued_records_total", component=PIPELINE)
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        assert wait_until(lambda: svc.telemetry.total("sovtel_queued_records_total", component=PIPELINE)
                          >= before + spans), "the collector never queued the first request"


def stored(dsn: str, db: str) -> dict[tuple[str, str], int]:
    """Stored spans by (trace id, span id) with their counts."""
    store = open_store({"dsn": dsn})
    try:
        rows = store.query_rows(f"SELECT trace_id, span_id, count() FROM {db}.spans GROUP BY trace_id, span_id")
        return {(str(t), str(s)): int(c) for t, s, c in rows}
    finally:
        store.close()


def test_a_request_resent_after_a_lost_answer_is_stored_once(
    collector: tuple[Service, int], chdb_dsn: str, unique_db: str
) -> None:
    """The same request sent twice (the first answer lost) stores each span exactly once and answers plain success."""
    svc, port = collector
    body = span_request(0xD0, range(200), RESOURCE)
    post_and_lose_the_answer(svc, port, body, 200)
    status, answer = post(port, body)
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")
    assert svc.flush(60)
    counts = stored(chdb_dsn, unique_db)
    assert len(counts) == 200
    assert set(counts.values()) == {1}
    assert {t for t, _ in counts} == {trace_id_of(0xD0, n) for n in range(200)}
    assert svc.telemetry.total("sovtel_dropped_records_total", component=PIPELINE, reason="duplicate") == 200


def test_spans_older_than_the_retention_are_rejected_not_acknowledged(
    collector: tuple[Service, int], chdb_dsn: str, unique_db: str
) -> None:
    """Spans the 30-day TTL would delete on arrival come back as rejected_spans and are never stored."""
    svc, port = collector
    request = ExportTraceServiceRequest.FromString(span_request(0xE0, range(10), RESOURCE))
    old = time.time_ns() - 40 * DAY_NS
    for span in request.resource_spans[0].scope_spans[0].spans[:4]:
        span.start_time_unix_nano, span.end_time_unix_nano = old - 1_000_000, old
    status, answer = post(port, request.SerializeToString())
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(answer).partial_success
    assert partial.rejected_spans == 4
    assert svc.flush(60)
    counts = stored(chdb_dsn, unique_db)
    assert {t for t, _ in counts} == {trace_id_of(0xE0, n) for n in range(4, 10)}
    assert svc.telemetry.total("sovtel_dropped_records_total", component=PIPELINE,
                               reason="older_than_retention") == 4
