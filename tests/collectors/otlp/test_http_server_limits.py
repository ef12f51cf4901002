"""Load limits of the OTLP receiver: worker pool, wait line, connection cap, request deadline, bytes in flight.

Every refusal here is retryable and says when to come back (503 or 429 with Retry-After over HTTP,
RESOURCE_EXHAUSTED with RetryInfo over gRPC), is counted by reason, and leaves the server serving.
Clients that hold the server (a half-sent request, a trickle) are real sockets on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from collectors.otlp.inflight import TRIM_AFTER_BYTES, InflightBudget, release_memory
from tests.collectors.otlp.builders import SMALL_LIMIT, genai_request, refused
from tests.collectors.otlp.conftest import Running
from tests.collectors.otlp.test_grpc import call
from tests.collectors.otlp.test_http import PROTOBUF, request, status_message
from tests.waiting import wait_until

VALID = genai_request(3).SerializeToString()


def limits(retry_after_s: int = 2, max_inflight_bytes: int | None = None, **http: Any) -> dict[str, Any]:
    """Receiver settings on 127.0.0.1 port 0 with the given HTTP limits."""
    cfg: dict[str, Any] = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "max_message_bytes": SMALL_LIMIT},
            "http": {"endpoint": "127.0.0.1:0", "max_body_bytes": SMALL_LIMIT, **http},
        },
        "retry_after_s": retry_after_s,
    }
    if max_inflight_bytes is not None:
        cfg["max_inflight_bytes"] = max_inflight_bytes
    return cfg


def head(length: int, extra: str = "") -> bytes:
    """Request line and headers of a protobuf trace export with a body of ``length`` bytes."""
    return (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def answer(sock: socket.socket) -> http.client.HTTPResponse:
    """Read one HTTP answer from ``sock``."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    resp.read()
    return resp


@contextmanager
def half_sent(running: Running, body: bytes = VALID) -> Iterator[tuple[socket.socket, Callable[[], int]]]:
    """A client that sent the headers and half the body; yields (socket, finish) where finish sends the rest."""
    sock = socket.create_connection(("127.0.0.1", running.receiver.http_port), timeout=20)
    half = len(body) // 2
    sock.sendall(head(len(body)) + body[:half])

    def finish() -> int:
        sock.sendall(body[half:])
        return answer(sock).status

    try:
        yield sock, finish
    finally:
        sock.close()


def busy_workers(running: Running) -> int:
    """Workers serving a request right now."""
    return len(running.receiver._http._loop._busy)  # type: ignore[union-attr]


def server_thread_count(running: Running) -> int:
    """Threads of the HTTP server (its selector and workers)."""
    prefix = f"otlp-http-{running.receiver.http_port}"
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


class TestWorkerPool:
    def test_request_beyond_the_pool_and_wait_line_gets_503_with_retry_after(self, start_receiver):
        """With the only worker busy and no wait slot, a request is answered 503 + Retry-After at once, counted."""
        running = start_receiver(**limits(max_workers=1, max_pending_requests=0, request_timeout_s=30))
        with half_sent(running) as (_sock, finish):
            assert wait_until(lambda: busy_workers(running) == 1, timeout=20)
            status, headers, body = request(running.receiver.http_port, VALID, PROTOBUF)
            assert (status, headers["retry-after"]) == (503, "2")
            assert status_message(headers, body)[0] == code_pb2.UNAVAILABLE
            assert refused(running.telemetry, "overloaded") == 1
            assert finish() == 200
        assert wait_until(lambda: busy_workers(running) == 0, timeout=20)
        status, _h, _b = request(running.receiver.http_port, VALID, PROTOBUF)
        assert status == 200 and running.traces.rows == 6

    def test_requests_wait_in_line_for_a_worker(self, start_receiver):
        """Requests within the wait line are served when the worker frees up, none refused."""
        running = start_receiver(**limits(max_workers=1, max_pending_requests=8))
        with half_sent(running) as (_sock, finish), ThreadPoolExecutor(4) as pool:
            assert wait_until(lambda: busy_workers(running) == 1, timeout=20)
            waiting = [pool.submit(request, running.receiver.http_port, VALID, PROTOBUF) for _ in range(4)]
            assert finish() == 200
            assert [f.result()[0] for f in waiting] == [200] * 4
        assert refused(running.telemetry, "overloaded") == 0 and running.traces.rows == 15

    def test_idle_kept_alive_connections_hold_no_worker(self, start_receiver):
        """Twenty kept-alive idle connections do not keep a one-worker server from serving a new client."""
        running = start_receiver(**limits(max_workers=1, max_pending_requests=1))
        conns = [http.client.HTTPConnection("127.0.0.1", running.receiver.http_port, timeout=20) for _ in range(20)]
        try:
            for conn in conns:
                conn.request("POST", "/v1/traces", body=VALID, headers=PROTOBUF)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200 and not resp.will_close
            assert request(running.receiver.http_port, VALID, PROTOBUF)[0] == 200
            for conn in conns:  # and each idle connection still carries a next request
                conn.request("POST", "/v1/traces", body=VALID, headers=PROTOBUF)
                assert conn.getresponse().status == 200
        finally:
            for conn in conns:
                conn.close()
        assert running.traces.rows == 41 * 3

    def test_connections_over_the_cap_get_503_and_close(self, start_receiver):
        """At max_connections a new connection is answered 503 + Retry-After and closed; the held ones still work."""
        running = start_receiver(**limits(max_connections=2))
        port = running.receiver.http_port
        held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
        try:
            loop = running.receiver._http._loop  # type: ignore[union-attr]
            assert wait_until(lambda: loop.open_connections == 2, timeout=20)
            with socket.create_connection(("127.0.0.1", port), timeout=20) as extra:
                resp = answer(extra)
                assert (resp.status, resp.getheader("Retry-After"), resp.getheader("Connection")) == (503, "2", "close")
            assert refused(running.telemetry, "too_many_connections") == 1
            held[0].sendall(head(len(VALID)) + VALID)
            assert answer(held[0]).status == 200
        finally:
            for s in held:
                s.close()

    def test_a_burst_of_connections_is_answered_with_bounded_threads(self, start_receiver):
        """300 clients at once on 2 workers: each gets 200 or 503 with Retry-After; 2 workers busy at most."""
        running = start_receiver(**limits(max_workers=2, max_pending_requests=16))
        start = threading.Barrier(300)

        def client(_i: int) -> tuple[int, str | None]:
            with socket.create_connection(("127.0.0.1", running.receiver.http_port), timeout=30) as sock:
                start.wait(30)
                sock.sendall(head(len(VALID), "Connection: close\r\n") + VALID)
                resp = answer(sock)
                return resp.status, resp.getheader("Retry-After")

        with ThreadPoolExecutor(300) as pool:
            answers = list(pool.map(client, range(300)))
            server_threads = server_thread_count(running)
        ok = sum(1 for status, _ in answers if status == 200)
        busy = [a for a in answers if a[0] != 200]
        assert ok + len(busy) == 300 and ok > 0
        assert all(status == 503 and retry == "2" for status, retry in busy)
        assert refused(running.telemetry, "overloaded") == len(busy)
        assert running.traces.rows == 3 * ok
        assert running.receiver._http.peak_busy_workers <= 2  # type: ignore[union-attr]
        assert server_threads == 3  # the selector and two workers, not a thread per client


class TestDeadline:
    @pytest.mark.parametrize("part", ["headers", "body"])
    def test_a_trickling_client_is_cut_off_at_the_deadline(self, start_receiver, part):
        """A client sending a byte every 50 ms is answered 408 and closed after request_timeout_s, counted."""
        running = start_receiver(**limits(request_timeout_s=1.0, read_timeout_s=30))
        data = head(len(VALID)) + VALID
        sent = len(head(len(VALID))) if part == "body" else 0
        with socket.create_connection(("127.0.0.1", running.receiver.http_port), timeout=20) as sock:
            sock.sendall(data[:sent])
            for i in range(sent, len(data)):  # a byte per 50 ms: the whole request would take many seconds
                sock.sendall(data[i : i + 1])
                answered, _w, _x = select.select([sock], [], [], 0.05)  # the pace, and whether the server spoke
                if answered:
                    break
            assert i < len(data) - 1, "the server let the trickle finish"
            resp = answer(sock)
        assert resp.status == 408 and resp.getheader("Connection") == "close"
        assert refused(running.telemetry, "request_timeout") == 1 and running.traces.rows == 0
        assert request(running.receiver.http_port, VALID, PROTOBUF)[0] == 200

    def test_a_stalled_request_is_cut_off_after_the_read_timeout(self, start_receiver):
        """A client that stops mid-body is answered 408 after read_timeout_s (a pause within a request)."""
        running = start_receiver(**limits(request_timeout_s=60, read_timeout_s=0.5))
        with half_sent(running) as (sock, _finish):
            assert answer(sock).status == 408
        assert refused(running.telemetry, "request_timeout") == 1


class TestBytesInFlight:
    def test_http_request_over_the_budget_gets_429_with_retry_after(self, start_receiver):
        """While one request holds the in-flight budget, another that would exceed it gets 429 + Retry-After."""
        running = start_receiver(**limits(max_inflight_bytes=len(VALID) + 10))
        budget = running.receiver.budget
        with half_sent(running) as (_sock, finish):
            assert wait_until(lambda: budget.used == len(VALID), timeout=20)
            status, headers, body = request(running.receiver.http_port, VALID, PROTOBUF)
            assert (status, headers["retry-after"]) == (429, "2")
            code, message = status_message(headers, body)
            assert code == code_pb2.RESOURCE_EXHAUSTED and "max_inflight_bytes" in message
            assert refused(running.telemetry, "inflight_bytes") == 1
            assert finish() == 200
        assert wait_until(lambda: budget.used == 0, timeout=20)
        assert request(running.receiver.http_port, VALID, PROTOBUF)[0] == 200
        assert running.traces.rows == 6

    def test_grpc_request_over_the_shared_budget_is_resource_exhausted(self, start_receiver):
        """The budget is shared: with HTTP holding it, a gRPC export gets RESOURCE_EXHAUSTED with RetryInfo."""
        running = start_receiver(**limits(max_inflight_bytes=len(VALID) + 10))
        with half_sent(running) as (_sock, finish):
            assert wait_until(lambda: running.receiver.budget.used == len(VALID), timeout=20)
            with pytest.raises(grpc.RpcError) as err:
                call(running, VALID)
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_inflight_bytes" in (err.value.details() or "")
            trailers = dict(err.value.trailing_metadata())
            assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 2
            assert refused(running.telemetry, "inflight_bytes") == 1
            assert finish() == 200
        call(running, VALID)
        assert running.traces.rows == 6

    def test_a_request_alone_is_admitted_even_over_the_budget(self, start_receiver):
        """A single request larger than max_inflight_bytes is served when nothing else is in flight."""
        running = start_receiver(**limits(max_inflight_bytes=10))
        assert request(running.receiver.http_port, VALID, PROTOBUF)[0] == 200
        call(running, VALID)
        assert running.traces.rows == 6 and running.receiver.budget.used == 0


class TestMemoryReturn:
    def test_memory_is_trimmed_once_after_a_burst(self):
        """When a burst of at least TRIM_AFTER_BYTES ends, the trim runs once (not per request)."""
        trims: list[float] = []
        budget = InflightBudget(64 * 1024 * 1024, trim=lambda: trims.append(time.monotonic()))
        held = [budget.try_reserve(TRIM_AFTER_BYTES // 4) for _ in range(4)]
        for r in held:
            assert r is not None
            r.release()
        assert wait_until(lambda: budget.trims == 1, timeout=20)
        assert len(trims) == 1 and budget.used == 0

    def test_small_requests_do_not_trim(self):
        """Requests below the burst threshold never trigger a trim."""
        budget = InflightBudget(1024, trim=lambda: pytest.fail("trimmed after a small request"))
        r = budget.try_reserve(100)
        assert r is not None
        r.release()
        assert budget.trims == 0

    def test_release_memory_is_harmless(self):
        """Giving memory back works (or is skipped) on this platform without raising."""
        release_memory()
