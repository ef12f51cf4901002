"""Soak: a collector (``sovtel run``, durable queue, embedded store) under a steady OTLP/HTTP load.

Measures the collector's RSS over time (flat within 10% after warm-up is the goal), checks that
every acknowledged span was stored once, and — in the same run — the durable queue's throughput
cost against the in-memory queue (two fresh collectors driven flat out by the same clients).
Duration: ``SOVTEL_SOAK_SECONDS`` (default 300); rate: ``SOVTEL_SOAK_RATE`` spans/s (default 2000).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Section
from collectors.otlp_client import AckingClient

DEFAULT_SECONDS = 300.0
DEFAULT_RATE = 2000
SPANS_PER_REQUEST = 50
RESOURCE = {"service.name": "chat-api", "sovtel.tier": "local", "cloud.region": "eu-de-1",
            "deployment.environment": "prod"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """A ``sovtel run`` subprocess with its own store and data directory."""

    def __init__(self, root: Path, durable: bool) -> None:
        self.root = root
        self.port = _free_port()
        self.store = root / "store"
        cfg = {
            "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False},
                                                 "http": {"endpoint": f"127.0.0.1:{self.port}"}}}},
            "processors": {"classify": {}},
            "exporters": {"clickhouse": {"path": str(self.store),
                                         "queue": {"durable": durable, "batch_rows": 20_000, "max_delay_s": 1.0}}},
            "service": {"data_dir": str(root / "state"), "telemetry": {"metrics": {"enabled": False}},
                        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["classify"],
                                                 "exporters": ["clickhouse"],
                                                 "unminimised": "soak test of the delivery path"}}},
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "collector.yaml").write_text(json.dumps(cfg))
        self.log = (root / "collector.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "run", "-c", str(root / "collector.yaml")],
            stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}; see {root / 'collector.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("collector did not start")

    def rss_mib(self) -> float:
        """Resident set size of the collector process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """SIGTERM (drains the queue) and wait."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()

    def stored_spans(self) -> tuple[int, int]:
        """(rows, distinct trace ids) in the store, read by a separate process."""
        script = ("import json,sys; from storage.backend import open_store; s=open_store({'path': sys.argv[1]}); "
                  "print(json.dumps(s.query_rows('SELECT count(), uniqExact(trace_id) FROM sovtel.spans')[0]))")
        out = subprocess.run([sys.executable, "-c", script, str(self.store)], capture_output=True, check=True,
                             timeout=300)
        rows, distinct = json.loads(out.stdout)
        return int(rows), int(distinct)


def _drive(port: int, run: int, seconds: float, rate: float | None, threads: int) -> list[AckingClient]:
    """Send spans for ``seconds``: at ``rate`` spans/s over all threads, or flat out (``rate`` None)."""
    clients = [AckingClient("127.0.0.1", port, run=run + k, resource=RESOURCE) for k in range(threads)]
    stop_at = time.monotonic() + seconds

    def work(client: AckingClient) -> None:
        interval = SPANS_PER_REQUEST * threads / rate if rate else 0.0
        n = 0
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            status = client.send(range(n, n + SPANS_PER_REQUEST))
            if status == 200:
                n += SPANS_PER_REQUEST
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            elif status != 200:
                time.sleep(0.05)
        client.close()

    ts = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return clients


def soak(root: Path, seconds: float, rate: int) -> dict[str, Any]:
    """Steady load on a durable collector; RSS samples every 2 s."""
    collector = Collector(root, durable=True)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - t0, collector.rss_mib()))
            done.wait(2.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        clients = _drive(collector.port, 0x50A0, seconds, rate, threads=2)
    finally:
        done.set()
        sampler.join()
        collector.stop()
    acked = sum(len(c.counts.acked) for c in clients)
    refused = sum(c.counts.sent - len(c.counts.acked) // SPANS_PER_REQUEST for c in clients)
    rows, distinct = collector.stored_spans()
    warm = max(10.0, seconds * 0.2)
    after = [rss for t, rss in samples if t >= warm] or [samples[-1][1]]
    baseline = after[0]
    growth = (max(after) - baseline) / baseline * 100
    return {
        "seconds": seconds, "rate_spans_s": rate, "acked": acked, "unacknowledged_requests": refused,
        "stored_rows": rows, "stored_distinct": distinct,
        "rss_start_mib": round(samples[0][1], 1), "rss_after_warmup_mib": round(baseline, 1),
        "rss_end_mib": round(after[-1], 1), "rss_max_after_warmup_mib": round(max(after), 1),
        "rss_median_after_warmup_mib": round(statistics.median(after), 1),
        "rss_growth_after_warmup_pct": round(growth, 1), "flat_within_10pct": growth <= 10.0,
        "samples": len(samples),
    }


def throughput(root: Path, durable: bool, seconds: float) -> float:
    """Acknowledged spans/s of a fresh collector driven flat out by 4 clients."""
    collector = Collector(root, durable=durable)
    try:
        _drive(collector.port, 0x70, 2.0, None, threads=4)  # warm-up
        t0 = time.monotonic()
        clients = _drive(collector.port, 0x80, seconds, None, threads=4)
        elapsed = time.monotonic() - t0
    finally:
        collector.stop()
    return sum(len(c.counts.acked) for c in clients) / elapsed


def run() -> Section:
    """The soak section of docs/benchmarks.md."""
    seconds = float(os.environ.get("SOVTEL_SOAK_SECONDS", DEFAULT_SECONDS))
    rate = int(os.environ.get("SOVTEL_SOAK_RATE", DEFAULT_RATE))
    burst = min(15.0, max(5.0, seconds / 4))
    with tempfile.TemporaryDirectory(prefix="sovtel-soak-") as tmp:
        root = Path(tmp)
        s = soak(root / "soak", seconds, rate)
        memory = throughput(root / "memory", durable=False, seconds=burst)
        durable = throughput(root / "durable", durable=True, seconds=burst)
    cost = (1 - durable / memory) * 100 if memory else 0.0
    numbers = {**s, "throughput_memory_spans_s": round(memory), "throughput_durable_spans_s": round(durable),
               "durable_cost_pct": round(cost, 1), "burst_seconds": burst}
    md = (
        f"`sovtel run` (OTLP/HTTP → classify → durable queue → embedded ClickHouse) at {rate:,} spans/s for "
        f"{seconds:.0f} s ({SPANS_PER_REQUEST} spans per request, 2 client threads).\n\n"
        "| measure | value |\n|---|---|\n"
        f"| spans acknowledged | {s['acked']:,} |\n"
        f"| rows stored / distinct trace ids | {s['stored_rows']:,} / {s['stored_distinct']:,} |\n"
        f"| requests not acknowledged (429 or no answer) | {s['unacknowledged_requests']:,} |\n"
        f"| collector RSS at start | {s['rss_start_mib']} MiB |\n"
        f"| RSS after warm-up ({max(10.0, seconds * 0.2):.0f} s) | {s['rss_after_warmup_mib']} MiB |\n"
        f"| RSS max after warm-up / at end | {s['rss_max_after_warmup_mib']} / {s['rss_end_mib']} MiB |\n"
        f"| RSS growth after warm-up | {s['rss_growth_after_warmup_pct']} % "
        f"({'flat' if s['flat_within_10pct'] else 'NOT flat'} within 10 %) |\n\n"
        f"Queue cost, same run, fresh collectors driven flat out by 4 clients for {burst:.0f} s each:\n\n"
        "| queue | acknowledged spans/s |\n|---|---|\n"
        f"| in-memory | {memory:,.0f} |\n| durable (SQLite WAL, synchronous=FULL) | {durable:,.0f} |\n\n"
        f"The durable queue costs {cost:.1f} % of the in-memory throughput "
        "(one fsynced SQLite commit per request before the acknowledgement).\n"
    )
    return Section("Soak and durable-queue cost", md, numbers)


if __name__ == "__main__":
    print(run().markdown)
