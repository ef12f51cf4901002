"""Fault tests with counts sent / acknowledged / stored: a store outage, a SIGKILLed collector, a full disk budget.

The outage is simulated by wrapping the real ClickHouse exporter (``Outage``): while the store is
"down" every insert fails as retryable, and the first failing insert of each outage actually
reaches the engine before its answer is "lost" — the ambiguous case that only the dedup token makes
harmless. The real embedded engine stores the data in the end, and the counts come from it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.otlp_client import AckingClient, trace_id_of
from sovtel.pipeline import Service
from sovtel.queue import queued_rows
from tests.e2e.adversarial.helpers import Outage, running, stored_counts
from tests.waiting import wait_until

RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local"}


def service_config(dsn: str, db: str, data_dir: Path, max_queue_bytes: int) -> dict[str, Any]:
    """One OTLP/HTTP receiver, one clickhouse sink with a durable queue (small batches so the outage bites)."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"clickhouse": {"dsn": dsn, "database": db, "aiact_database": f"{db}_aiact",
                                     "queue": {"durable": True, "batch_rows": 500, "max_delay_s": 0.05,
                                               "max_queue_bytes": max_queue_bytes}}},
        "service": {"data_dir": str(data_dir), "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"],
                                             "unminimised": "test of the delivery path"}}},
    }


@pytest.fixture
def outage_service(chdb_dsn: str, unique_db: str, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Iterator[tuple[Service, Outage]]:
    """A running collector whose sink can be taken down; ``max_queue_bytes`` comes from the test's param."""
    budget = getattr(request, "param", 256 * 1024 * 1024)
    with running(service_config(chdb_dsn, unique_db, tmp_path, budget)) as (svc, _port):
        queue = svc.exporters["clickhouse"]
        outage = Outage(queue.exporter)
        queue.exporter = outage
        try:
            yield svc, outage
        finally:
            outage.down.clear()


def test_store_outage_under_steady_load_loses_and_duplicates_nothing(
    outage_service: tuple[Service, Outage], chdb_dsn: str, unique_db: str
) -> None:
    """Every span acknowledged before, during and after a store outage is stored exactly once after recovery."""
    svc, outage = outage_service
    port = svc.receivers["otlp"].http_port  # type: ignore[attr-defined]
    client = AckingClient("127.0.0.1", port, run=0xA1, resource=RESOURCE)
    queue = svc.exporters["clickhouse"]
    held = acked_in_outage = 0
    for i in range(120):  # 120 requests of 50 spans, about 10 ms apart
        if i == 30:
            outage.fail()
            acked_in_outage = -len(client.counts.acked)
        if i == 90:
            # The sink has been tried and failed: everything acknowledged during the outage is still queued.
            assert wait_until(lambda: outage.failed > 0)
            held, acked_in_outage = queue.queued_rows, acked_in_outage + len(client.counts.acked)
            outage.down.clear()
        client.send(range(i * 50, i * 50 + 50))
        time.sleep(0.01)
    client.close()
    assert svc.flush(60)
    stored = stored_counts(chdb_dsn, unique_db)
    acked = {trace_id_of(0xA1, n) for n in client.counts.acked}
    print(f"\noutage: sent {client.counts.sent * 50} spans, acked {len(acked)}, stored {sum(stored.values())}, "
          f"failed inserts {outage.failed}, ambiguous {outage.ambiguous}, queued at the end of the outage {held} rows")
    assert outage.failed > 0 and outage.ambiguous == 1
    assert acked_in_outage > 0 and held >= acked_in_outage
    assert len(acked) == 6000
    assert set(stored) == acked
    assert max(stored.values()) == 1


@pytest.mark.parametrize("outage_service", [1024 * 1024], indirect=True)
def test_full_disk_budget_answers_retryable_and_loses_nothing(
    outage_service: tuple[Service, Outage], chdb_dsn: str, unique_db: str
) -> None:
    """A full 1 MiB queue answers 429 while the store is down; afterwards every acknowledged span is stored once."""
    svc, outage = outage_service
    port = svc.receivers["otlp"].http_port  # type: ignore[attr-defined]
    client = AckingClient("127.0.0.1", port, run=0xC3, resource=RESOURCE)
    outage.fail()
    refused: list[range] = []
    for i in range(80):
        numbers = range(i * 50, i * 50 + 50)
        if client.send(numbers) == 429:
            refused.append(numbers)
    acked_during_outage = len(client.counts.acked)
    assert client.counts.statuses.get(429, 0) > 0
    assert set(client.counts.statuses) <= {200, 429}
    outage.down.clear()
    assert svc.flush(60)
    for numbers in refused:  # a well-behaved client retries what was refused
        assert client.send(numbers) == 200
    client.close()
    assert svc.flush(60)
    stored = stored_counts(chdb_dsn, unique_db)
    print(f"\ndisk budget: sent {80 * 50} spans, acked during outage {acked_during_outage}, "
          f"refused (429) {client.counts.statuses[429]} requests, stored {sum(stored.values())} after retries")
    assert set(stored) == {trace_id_of(0xC3, n) for n in range(4000)}
    assert max(stored.values()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_collector(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "run", "-c", str(cfg)],
                            stdout=out, stderr=out)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collector exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("collector did not start listening")


def test_sigkill_mid_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A collector SIGKILLed under load and restarted stores every acknowledged span exactly once."""
    port = _free_port()
    store_dir, data_dir = tmp_path / "store", tmp_path / "state"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(json.dumps({
        "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False},
                                             "http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "exporters": {"clickhouse": {"path": str(store_dir),
                                     "queue": {"durable": True, "batch_rows": 2000, "max_delay_s": 0.2}}},
        "service": {"data_dir": str(data_dir), "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["clickhouse"],
                                             "unminimised": "test of the delivery path"}}},
    }))
    log = tmp_path / "collector.log"
    proc = _start_collector(cfg, log)
    _wait_listening(port, proc)
    client = AckingClient("127.0.0.1", port, run=0xB2, resource=RESOURCE, timeout_s=5)
    sent = 0
    killed_at = time.monotonic() + 3.0
    while time.monotonic() < killed_at:
        client.send(range(sent, sent + 40))
        sent += 40
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    for _ in range(5):  # requests against a dead collector are not acknowledged
        client.send(range(sent, sent + 40))
        sent += 40
    acked_before_kill = len(client.counts.acked)
    queue_file = data_dir / "queue" / "clickhouse.sqlite"
    left_on_disk = queued_rows(queue_file)

    proc = _start_collector(cfg, log)
    try:
        _wait_listening(port, proc)
        client.close()
        for _ in range(10):  # the restarted collector takes traffic again
            client.send(range(sent, sent + 40))
            sent += 40
        deadline = time.monotonic() + 60
        while queued_rows(queue_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queued_rows(queue_file) == 0, "queue did not drain after restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    client.close()

    # Query the store in a separate process, as an operator would.
    script = ("import json,sys; from storage.backend import open_store; s=open_store({'path': sys.argv[1]}); "
              "print(json.dumps(s.query_rows('SELECT trace_id, count() FROM sovtel.spans GROUP BY trace_id')))")
    out = subprocess.run([sys.executable, "-c", script, str(store_dir)], capture_output=True, check=True, timeout=120)
    stored = Counter({t: int(c) for t, c in json.loads(out.stdout)})
    acked = {trace_id_of(0xB2, n) for n in client.counts.acked}
    print(f"\nsigkill: sent {sent} spans, acked {len(acked)} ({acked_before_kill} before the kill), "
          f"{left_on_disk} rows on disk at the kill, stored {sum(stored.values())}")
    assert acked_before_kill > 0 and len(acked) > acked_before_kill
    assert acked <= set(stored)
    assert max(stored.values()) == 1
    assert set(stored) <= {trace_id_of(0xB2, n) for n in range(sent)}
