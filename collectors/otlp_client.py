"""A raw OTLP/HTTP protobuf client that counts which spans the collector acknowledged.

For fault tests and the soak bench: every span carries a numbered trace id (``run`` in the high 64
bits, the span's number in the low 64), so a test can check that each acknowledged span is stored
exactly once. Not an SDK: no batching, no retries beyond what the caller does.
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def trace_id_of(run: int, number: int) -> str:
    """The stored (hex) trace id of span ``number`` of run ``run``."""
    return f"{run:016x}{number:016x}"


def span_request(
    run: int,
    numbers: Sequence[int],
    resource: Mapping[str, str],
    span_attributes: Mapping[str, str] | None = None,
) -> bytes:
    """An ExportTraceServiceRequest of one GenAI chat span per number, serialised."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in resource.items():
        rs.resource.attributes.append(_kv(k, v))
    ss = rs.scope_spans.add()
    ss.scope.name = "sovtel.otlp_client"
    now = time.time_ns()
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "llama-3.1-8b", **(span_attributes or {})}
    for n in numbers:
        span = ss.spans.add()
        span.trace_id = run.to_bytes(8, "big") + n.to_bytes(8, "big")
        span.span_id = (n + 1).to_bytes(8, "big")
        span.name = "chat llama-3.1-8b"
        span.kind = 3  # CLIENT
        span.start_time_unix_nano = now - 50_000_000
        span.end_time_unix_nano = now
        for k, v in attrs.items():
            span.attributes.append(_kv(k, v))
    return bytes(req.SerializeToString())


def _kv(key: str, value: str) -> KeyValue:
    kv = KeyValue(key=key)
    kv.value.string_value = value
    return kv


@dataclass
class AckCounts:
    """What the client saw: span numbers acknowledged, and request outcomes by HTTP status (0: no answer)."""

    acked: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        """Requests sent."""
        return sum(self.statuses.values())


class AckingClient:
    """Posts span requests to ``/v1/traces`` over one kept-alive connection; records acknowledged spans.

    Not thread-safe: use one client per thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        run: int,
        resource: Mapping[str, str] | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port, self.run = host, port, run
        self.resource = dict(resource or {"service.name": "chat-api"})
        self.token = token
        self.ssl_context = ssl_context
        self.timeout_s = timeout_s
        self.counts = AckCounts()
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.ssl_context is not None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=self.ssl_context
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def send(self, numbers: Sequence[int], span_attributes: Mapping[str, str] | None = None) -> int:
        """Post one request; returns the HTTP status (0 if the collector did not answer)."""
        body = span_request(self.run, numbers, self.resource, span_attributes)
        headers = {"Content-Type": "application/x-protobuf"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        status = 0
        try:
            conn = self._connection()
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            self.close()
        self.counts.statuses[status] = self.counts.statuses.get(status, 0) + 1
        if status == 200:
            self.counts.acked.extend(numbers)
        return status

    def close(self) -> None:
        """Drop the connection (the next send reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
