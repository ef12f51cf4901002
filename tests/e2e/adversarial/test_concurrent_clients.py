"""Adversarial scenario: a thousand OTLP/HTTP clients connect to the collector at the same moment.

A real collector (OTLP/HTTP receiver with its default limits → clickhouse exporter on the embedded
engine, durable queue) on 127.0.0.1. A thousand clients (asyncio streams, raw HTTP/1.1) open their
connections, wait until all are open, then each sends one small protobuf export request of two
spans. Every client must get an answer — 2xx, or 429/503 with Retry-After — and every span of an
acknowledged request must be stored exactly once; a refused request must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.otlp_client import span_request, trace_id_of
from sovtel.pipeline import Service
from tests.e2e.adversarial.helpers import running, stored_counts

CLIENTS = 1000
RUN = 0xC0C0
RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local"}
ANSWER_WITHIN_S = 120.0


def config(dsn: str, db: str, data_dir: Path) -> dict[str, Any]:
    """OTLP/HTTP receiver (default backlog, workers and wait line), minimise, clickhouse sink with a durable queue."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"minimise": {}},
        "exporters": {
            "clickhouse": {
                "dsn": dsn,
                "database": db,
                "aiact_database": f"{db}_aiact",
                "queue": {"durable": True, "batch_rows": 5000, "max_delay_s": 0.1},
            }
        },
        "service": {
            "data_dir": str(data_dir),
            "telemetry": {"metrics": {"enabled": False}},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"], "exporters": ["clickhouse"]}},
        },
    }


@pytest.fixture
def collector(chdb_dsn: str, unique_db: str, tmp_path: Path) -> Iterator[tuple[Service, int]]:
    """A running collector and its OTLP/HTTP port."""
    with running(config(chdb_dsn, unique_db, tmp_path)) as started:
        yield started


async def one_client(port: int, number: int, all_open: asyncio.Event, opened: list[int]) -> tuple[int, str | None]:
    """Connect, wait for every client to be connected, send one request; (status, Retry-After) or (0, error)."""
    body = span_request(RUN, [2 * number, 2 * number + 1], RESOURCE)
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        opened.append(0)
        return 0, f"connect: {exc}"
    opened.append(1)
    try:
        await all_open.wait()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        parts = status_line.split()
        return (int(parts[1]), headers.get("retry-after")) if len(parts) >= 2 else (0, f"no status: {status_line!r}")
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


async def burst(port: int) -> tuple[list[tuple[int, str | None]], float, int]:
    """Run the clients; (answers in client order, seconds from the first send to the last answer, peak threads)."""
    all_open = asyncio.Event()
    opened: list[int] = []
    tasks = [asyncio.create_task(one_client(port, i, all_open, opened)) for i in range(CLIENTS)]
    while len(opened) < CLIENTS:
        await asyncio.sleep(0.01)  # connecting; the event loop needs the turns
    started = time.monotonic()
    all_open.set()
    peak_threads = threading.active_count()
    pending = set(tasks)
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=0.05)
        peak_threads = max(peak_threads, threading.active_count())
    return [t.result() for t in tasks], time.monotonic() - started, peak_threads


def test_a_thousand_concurrent_clients_are_all_answered_and_nothing_acknowledged_is_lost(
    collector: tuple[Service, int], chdb_dsn: str, unique_db: str
) -> None:
    """1,000 clients at once: each gets 2xx or 429/503 with Retry-After; acknowledged spans are stored exactly once."""
    svc, port = collector
    threads_idle = threading.active_count()
    answers, took, peak_threads = asyncio.run(asyncio.wait_for(burst(port), ANSWER_WITHIN_S))
    statuses = Counter(status for status, _ in answers)
    print(
        f"\n{CLIENTS} concurrent clients: {dict(sorted(statuses.items()))} answered in {took:.2f} s; "
        f"threads {threads_idle} idle, {peak_threads} at peak (whole process, clients are asyncio)"
    )
    unanswered = [(i, a) for i, a in enumerate(answers) if a[0] == 0]
    assert not unanswered, unanswered[:5]
    refused = [a for a in answers if a[0] in (429, 503)]
    assert all(retry is not None and retry.isdigit() for _s, retry in refused), refused[:5]
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses[200] > 0

    assert svc.flush(60)
    acked = {trace_id_of(RUN, 2 * i + k) for i, (status, _) in enumerate(answers) if status == 200 for k in (0, 1)}
    stored = stored_counts(chdb_dsn, unique_db)
    assert set(stored) == acked  # every acknowledged span, and nothing of a refused request
    assert max(stored.values()) == 1
