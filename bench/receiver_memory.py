"""Receiver memory under a burst: peak RSS over idle against the request bytes in flight.

A real collector (``Service``: OTLP/HTTP → minimise → clickhouse exporter with its durable queue on
the embedded store) runs in its own process. After a warm-up request it is idle; then four clients
send one ~10 MB traces request each at the same moment. The collector's peak RSS (the kernel's
high-water mark, reset just before the burst) over its idle RSS is compared with the request bytes
the receiver held at once (its in-flight budget's peak). Goal: at most 5×.

``python -m bench receiver_memory`` (a section of docs/benchmarks.md), or
``python -m bench.receiver_memory [--spans N] [--clients C]`` to print the figures alone.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Section

CLIENTS = 4
SPANS_PER_REQUEST = 20_000  # about 10.4 MB of GenAI spans
GOAL_RATIO = 5.0
MIB = 1024 * 1024


def _status(pid: int | str) -> dict[str, int]:
    """The memory lines of /proc/<pid>/status, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def collector(store_dir: str) -> None:
    """The collector process: serve OTLP/HTTP, answer commands on stdin with JSON lines on stdout.

    Commands: ``idle`` (reset the peak, report RSS), ``peak`` (report peak and current RSS and the
    in-flight budget's peak), ``flush`` (drain the queue, report spans stored), ``stop``.
    """
    from sovtel.config import parse_config
    from sovtel.pipeline import Service

    cfg = parse_config({
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0", "max_body_bytes": 64 * MIB},
                                             "grpc": {"enabled": False}}}},
        "processors": {"minimise": {}},
        "exporters": {"clickhouse": {"path": store_dir, "queue": {"durable": True}}},
        "service": {"data_dir": store_dir + "-state", "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                             "exporters": ["clickhouse"]}}},
    }, source="bench")
    svc = Service(cfg)
    svc.start()
    receiver: Any = svc.receivers["otlp"]
    print(json.dumps({"port": receiver.http_port}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "idle":
            # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0).
            Path("/proc/self/clear_refs").write_text("5")
            reply: dict[str, Any] = _status("self")
        elif command == "peak":
            reply = {**_status("self"), "inflight_peak": receiver.budget.peak}
        elif command == "flush":
            svc.flush(300)
            reply = {"stored": int(svc.telemetry.total("sovtel_sent_records_total", component="clickhouse"))}
        else:
            break
        print(json.dumps(reply), flush=True)
    svc.shutdown()


class Collector:
    """The collector process, driven over its stdin and stdout."""

    def __init__(self, store_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver_memory", "--collector", str(store_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.port = int(self.ask(None)["port"])

    def ask(self, command: str | None) -> dict[str, Any]:
        """Send a command (None: only read) and return the JSON reply."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the collector exited with {self.proc.wait(timeout=30)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def post(self, body: bytes) -> int:
        """POST one traces request; the HTTP status (429/503 are retried, as OTLP clients do)."""
        deadline = time.monotonic() + 120
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
            if resp.status not in (429, 503) or time.monotonic() > deadline:
                return resp.status
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the collector and wait for it."""
        with contextlib.suppress(RuntimeError, BrokenPipeError, json.JSONDecodeError):
            self.ask("stop")
        self.proc.wait(timeout=120)


def burst(collector: Collector, bodies: list[bytes]) -> list[int]:
    """Send every body at the same moment, one client each; their HTTP statuses."""
    start = threading.Barrier(len(bodies))
    statuses = [0] * len(bodies)

    def client(i: int) -> None:
        start.wait()
        statuses[i] = collector.post(bodies[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def _burst_figures(proc: Collector, bodies: list[bytes]) -> dict[str, Any]:
    """One burst from idle: RSS before, at the peak and 1.5 s after, the bytes in flight, the statuses."""
    proc.ask("flush")
    time.sleep(1.5)  # let the receiver's post-burst trim run, so idle is idle
    idle = proc.ask("idle")
    t0 = time.perf_counter()
    statuses = burst(proc, bodies)
    seconds = time.perf_counter() - t0
    peak = proc.ask("peak")
    time.sleep(1.5)
    after = proc.ask("peak")
    return {"idle": idle["VmRSS"], "peak": peak["VmHWM"], "after": after["VmRSS"],
            "inflight": int(peak["inflight_peak"]), "statuses": statuses, "seconds": seconds}


def measure(spans: int = SPANS_PER_REQUEST, clients: int = CLIENTS) -> dict[str, Any]:
    """Idle RSS, peak RSS, bytes in flight and their ratio for ``clients`` concurrent requests of ``spans`` spans:
    for the first burst after start-up (cold) and for a second one (warm: the store's buffers and
    the heap already sized by the first)."""
    from bench.spine import requests

    # Distinct trace ids in every request: a resent span would be dropped as a duplicate, not stored.
    bodies = requests(2 * clients, spans)
    warm = requests(1, 200, seed=7)[0]
    work = Path(tempfile.mkdtemp(prefix="sovtel-bench-memory-"))
    (work / "store-state").mkdir()
    proc = Collector(work / "store")
    try:
        # Warm-up: imports, caches and the first batch to the store happen before the idle figure.
        if proc.post(warm) != 200:
            raise RuntimeError("the warm-up request was not accepted")
        cold = _burst_figures(proc, bodies[:clients])
        again = _burst_figures(proc, bodies[clients:])
        stored = proc.ask("flush")["stored"]
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {"clients": clients, "request_bytes": len(bodies[0]), "stored": stored,
                           "sent": 2 * spans * clients + 200}
    for name, b in (("cold", cold), ("warm", again)):
        inflight = b["inflight"] or 1
        out[name] = {**b, "ratio": (b["peak"] - b["idle"]) / inflight, "after_ratio": (b["after"] - b["idle"]) / inflight}
    return out


def run() -> Section:
    """The benchmark section."""
    m = measure()
    mb = 1e6
    rows = []
    for name, label in (("cold", "first burst after start-up"), ("warm", "second burst")):
        b = m[name]
        ok = "met" if b["ratio"] <= GOAL_RATIO else "not met"
        rows.append(
            f"| {label} | {b['idle'] / mb:,.0f} MB | {b['peak'] / mb:,.0f} MB | {b['inflight'] / mb:,.1f} MB "
            f"| **{b['ratio']:.2f}×** ({ok}) | {b['after_ratio']:.2f}× | {b['seconds']:.2f} s |"
        )
    table = "\n".join(rows)
    md = f"""
Workload: a collector (OTLP/HTTP → minimise → clickhouse exporter, durable queue, embedded store) after a
warm-up request; then twice {m['clients']} clients each send one request of {SPANS_PER_REQUEST:,} GenAI spans
({m['request_bytes'] / mb:.1f} MB, distinct trace ids) at the same moment, the queue drained between the bursts.
Peak RSS is the kernel's high-water mark of the collector process; the goal is a peak over idle of at most
{GOAL_RATIO:.0f}× the request bytes in flight.

| burst | idle RSS | peak RSS | bytes in flight | peak over idle ÷ in flight | 1.5 s after, over idle ÷ in flight | answered in |
|---|---|---|---|---|---|---|
{table}

{m['stored']:,} spans stored of {m['sent']:,} sent.
"""
    return Section("Receiver memory under a burst", md, m)


def main(argv: list[str] | None = None) -> int:
    """Print the figures (or, with --collector, be the collector process)."""
    ap = argparse.ArgumentParser(prog="python -m bench.receiver_memory")
    ap.add_argument("--collector", metavar="STORE_DIR", help=argparse.SUPPRESS)
    ap.add_argument("--spans", type=int, default=SPANS_PER_REQUEST)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    args = ap.parse_args(argv)
    if args.collector:
        collector(args.collector)
        return 0
    m = measure(args.spans, args.clients)
    print(json.dumps({k: v for k, v in m.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
