"""Full disk: a collector whose durable queue sits on a 20 MB filesystem, with its store down.

Four OTLP/HTTP clients send until the queue refuses; then a ballast file takes the rest of the
filesystem, as another writer on a shared disk would. Every answer must be 200 or a retryable
429/503 with Retry-After (never a 500, which OTLP clients drop), the queue must keep deleting
what it delivered on the full disk, and after the store returns every acknowledged span — and
every refused one, once re-sent — is stored exactly once, with the queue drained in bounded time.
The store outage wraps the real ClickHouse exporter (the first failing insert really lands, so the
replay must be deduplicated); the engine, the queue and the filesystem are real.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from pathlib import Path

from collectors.otlp_client import span_request, trace_id_of
from sovtel.queue import disk_free, queue_file, queued_rows
from tests.disks import fill_disk, small_filesystem
from tests.e2e.adversarial.helpers import Outage, running, stored_counts
from tests.waiting import wait_until

RUN = 0xD15C
RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local"}
SPANS_PER_REQUEST = 500
CLIENTS = 4
REFUSALS_WANTED = 12
DRAIN_DEADLINE_S = 45.0


class Clients:
    """Numbered span requests from several threads; records every answer and which spans were acknowledged."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.next = 0
        self.acked: list[int] = []
        self.refused: list[range] = []
        self.answers: Counter[tuple[int, bool]] = Counter()  # (status, has Retry-After)

    def send(self, conn: http.client.HTTPConnection, numbers: range) -> int:
        """Post one request; 0 when the collector did not answer."""
        status, retry_after = 0, False
        try:
            conn.request("POST", "/v1/traces", body=span_request(RUN, numbers, RESOURCE),
                         headers={"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            status, retry_after = resp.status, resp.getheader("Retry-After") is not None
        except (OSError, http.client.HTTPException):
            conn.close()
        with self.lock:
            self.answers[(status, retry_after)] += 1
            if status == 200:
                self.acked.extend(numbers)
            elif status in (429, 503):
                self.refused.append(numbers)
        return status

    def until_refused(self, deadline: float) -> None:
        """Send until REFUSALS_WANTED refusals in all, or the deadline."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with self.lock:
                    if len(self.refused) >= REFUSALS_WANTED:
                        return
                    numbers = range(self.next, self.next + SPANS_PER_REQUEST)
                    self.next += SPANS_PER_REQUEST
                self.send(conn, numbers)
        finally:
            conn.close()


def test_full_disk_answers_retryable_keeps_deleting_and_loses_nothing(
    chdb_dsn: str, unique_db: str, tmp_path: Path
) -> None:
    """On a full 20 MB queue filesystem: only 200 or 429/503 + Retry-After, a bounded drain, every span stored once."""
    with small_filesystem(tmp_path / "queue", "20m") as queue_dir, running({
            "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False},
                                                 "http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"minimise": {}},
            "exporters": {"clickhouse": {
                "dsn": chdb_dsn, "database": unique_db, "aiact_database": f"{unique_db}_aiact",
                # The byte budget (1 GiB by default) is far above the filesystem: only the watermark guards it.
                "queue": {"durable": True, "directory": str(queue_dir), "batch_rows": 5000, "max_delay_s": 0.05}}},
            "service": {"data_dir": str(tmp_path), "telemetry": {"metrics": {"enabled": False}},
                        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                                 "exporters": ["clickhouse"]}}},
        }) as (svc, port):
        queue = svc.exporters["clickhouse"]
        outage = Outage(queue.exporter)
        queue.exporter = outage
        outage.down.set()
        clients = Clients(port)
        deadline = time.monotonic() + 40
        threads = [threading.Thread(target=clients.until_refused, args=(deadline,)) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        free_at_refusal = disk_free(queue_dir)
        acked_in_outage = len(clients.acked)
        assert len(clients.refused) >= REFUSALS_WANTED, f"no refusals before the deadline: {clients.answers}"
        assert outage.failed > 0 and acked_in_outage > 0

        # Another writer takes what the watermark left: the queue must still delete on a full disk.
        ballast = fill_disk(queue_dir / "ballast")
        conn = http.client.HTTPConnection("127.0.0.1", clients.port, timeout=30)
        for _ in range(3):  # the full disk answers retryable too
            clients.send(conn, range(clients.next, clients.next + SPANS_PER_REQUEST))
            clients.next += SPANS_PER_REQUEST
        held = queue.queued_rows
        assert held >= acked_in_outage

        returned = time.monotonic()
        outage.down.clear()
        path = queue_file(queue_dir, "clickhouse")
        assert wait_until(lambda: queued_rows(path) == 0, timeout=DRAIN_DEADLINE_S), "queue did not drain"
        drained_s = time.monotonic() - returned

        (queue_dir / "ballast").unlink()
        retries = list(clients.refused)
        clients.refused.clear()
        for numbers in retries:  # a well-behaved client re-sends what was refused
            assert wait_until(lambda n=numbers: clients.send(conn, n) == 200, timeout=30, interval=0.5)
        conn.close()
        assert svc.flush(60)

        stored = stored_counts(chdb_dsn, unique_db)
        acked = {trace_id_of(RUN, n) for n in clients.acked}
        print(f"\nfull disk: answers {dict(clients.answers)}, acked {len(acked)} spans "
              f"({acked_in_outage} while the store was down, {held} rows queued at the peak), "
              f"{free_at_refusal} bytes free at the first refusals, ballast {ballast} bytes, "
              f"drained {drained_s:.1f} s after the store returned, stored {sum(stored.values())}, "
              f"{getattr(queue.buffer, 'commits', '?')} queue commits")
        statuses = {status for status, _ in clients.answers}
        assert statuses <= {200, 429, 503}, f"answers other than 200/429/503: {clients.answers}"
        assert all(retry for (status, retry) in clients.answers if status != 200), "a refusal lacked Retry-After"
        assert set(stored) == acked
        assert max(stored.values()) == 1
