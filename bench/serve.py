"""``sovtel serve`` against clickhouse-connect's in-process chDB mode: insert and select rows/s on the
same span table, both measured in this run (target: the service at ≥ 0.7× of in-process).

chDB opens one directory per process, so each side runs in a process of its own: the in-process
baseline in a child ``python -m bench.serve --in-process DIR``, the service as a ``storage.serve``
child with the measuring client in this process.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import Section, machine

ROWS = 100_000
BATCH_ROWS = 20_000
REPEATS = 4
TARGET_RATIO = 0.7
DATABASE = "bench_serve"


def make_spans(n: int, seed: int = 7) -> pa.Table:
    """``n`` realistic GenAI spans (12 span attributes, resource attributes, quality scores)."""
    from sovtel.records import Signal, table_from_columns

    rnd = random.Random(seed)
    keys = ("gen_ai.request.temperature", "gen_ai.request.max_tokens", "gen_ai.request.top_p", "gen_ai.response.id",
            "gen_ai.openai.api_base", "http.route", "server.address", "server.port", "deployment.environment",
            "cloud.region", "k8s.namespace.name", "user_agent.original")
    attr_sets = [[(k, f"{k.rsplit('.', 1)[-1]}-{rnd.randrange(100)}") for k in keys] for _ in range(256)]
    models = ("llama-3.1-70b-instruct", "mistral-large-2", "qwen2.5-72b")
    base = time.time_ns() - 3_600 * 10**9
    return table_from_columns(Signal.TRACES, {
        "timestamp": pa.array([base + i * 1_000 for i in range(n)], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "duration_ns": [rnd.randrange(10**7, 10**10) for _ in range(n)],
        "trace_id": [f"{rnd.getrandbits(128):032x}" for _ in range(n)],
        "span_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
        "service_name": [rnd.choice(("chat-api", "rag-search", "agent")) for _ in range(n)],
        "node": [f"gpu-node-{i % 8}" for i in range(n)],
        "span_name": ["chat"] * n,
        "status_code": [rnd.choice(("OK", "OK", "OK", "ERROR")) for _ in range(n)],
        "operation": ["chat"] * n,
        "provider": ["vllm"] * n,
        "request_model": [rnd.choice(models) for _ in range(n)],
        "input_tokens": [rnd.randrange(20, 4_000) for _ in range(n)],
        "output_tokens": [rnd.randrange(1, 1_000) for _ in range(n)],
        "tenant_id": [f"tenant-{rnd.randrange(20):02d}" for _ in range(n)],
        "user_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
        "resource_attributes": [[("host.name", f"gpu-node-{i % 8}")] for i in range(n)],
        "span_attributes": [attr_sets[rnd.randrange(256)] for _ in range(n)],
        "quality_scores": [[("relevance", rnd.random())]] * n,
    })


OPERATIONS = ("insert_native", "insert_arrow", "query_arrow", "query_rows")


class Workload:
    """The measured operations on one client; the same code runs in both modes.

    Each ``run(op)`` times one repetition; inserts start from an empty table (truncated untimed)
    and leave ``ROWS`` rows, which the queries then read back and check.
    """

    def __init__(self, client: Any, spans: pa.Table) -> None:
        from storage.migrate import SchemaSettings, render

        self.client = client
        self.spans = spans
        self.table = f"{DATABASE}.spans"
        sql = render(SchemaSettings(database=DATABASE, aiact_database=f"{DATABASE}_aiact"), include_aiact=False)
        for statement in sql.split(";\n"):
            text = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if text.rstrip(";"):
                client.command(text.rstrip(";"))
        self.batches = [spans.slice(i, BATCH_ROWS) for i in range(0, spans.num_rows, BATCH_ROWS)]
        self.columns = spans.column_names
        self.pydata = [[_python_column(batch.column(c)) for c in self.columns] for batch in self.batches]

    def run(self, op: str) -> float:
        """Seconds one repetition of ``op`` takes."""
        client, rows = self.client, self.spans.num_rows
        if op.startswith("insert"):
            client.command(f"TRUNCATE TABLE {self.table}")
        started = time.perf_counter()
        if op == "insert_arrow":
            for batch in self.batches:
                client.insert_arrow(self.table, batch)
        elif op == "insert_native":
            for data in self.pydata:
                client.insert(self.table, data, column_names=self.columns, column_oriented=True)
        elif op == "query_arrow":
            _check(client.query_arrow(f"SELECT * FROM {self.table}").num_rows, rows)
        elif op == "query_rows":
            _check(len(client.query(f"SELECT * FROM {self.table}").result_rows), rows)
        else:
            raise ValueError(f"unknown operation {op!r}")
        elapsed = time.perf_counter() - started
        if op.startswith("insert"):
            _check(int(client.command(f"SELECT count() FROM {self.table}")), rows)
        return elapsed


def _python_column(column: pa.ChunkedArray) -> list[Any]:
    """A column as clickhouse-connect's ``insert`` takes it (maps as dicts, not pair lists)."""
    return [_python_value(v, column.type) for v in column.to_pylist()]


def _python_value(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_map(kind):
        return {k: _python_value(v, kind.item_type) for k, v in value}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [_python_value(v, kind.value_type) for v in value]
    return value


def _check(got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"read {got} rows, expected {expected}")


@contextmanager
def served_store(directory: Path) -> Iterator[int]:
    """A ``storage.serve`` child on ``directory`` (loopback, no auth: a throwaway store); yields its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "--store", str(directory), "--listen", "127.0.0.1:0",
         "--insecure-no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on http://" not in line:
            raise RuntimeError(f"sovtel serve did not start: {line!r}")
        yield int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def in_process_worker(directory: Path, spans_file: Path) -> Iterator[Callable[[str], float]]:
    """A child measuring clickhouse-connect's chDB mode on ``directory``; yields ``run(op) -> seconds``."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve", "--worker", str(directory), str(spans_file)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def run(op: str) -> float:
        stdin.write(op + "\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError("the in-process worker stopped")
        return float(answer)

    try:
        if stdout.readline().strip() != "ready":
            raise RuntimeError("the in-process worker did not start")
        yield run
    finally:
        stdin.close()
        proc.wait(60)


def _worker(directory: Path, spans_file: Path) -> None:
    from clickhouse_connect import get_client

    client = get_client(dsn=f"chdb://{directory}")
    workload = Workload(client, pa.ipc.open_file(spans_file).read_all())
    print("ready", flush=True)
    for line in sys.stdin:
        print(workload.run(line.strip()), flush=True)
    client.close()


def run() -> Section:
    """Measure both modes on the same data, alternating between them, and describe the result."""
    from clickhouse_connect import get_client

    spans = make_spans(ROWS)
    best: dict[str, dict[str, float]] = {mode: {} for mode in ("in_process", "served", "served_uncompressed")}
    with tempfile.TemporaryDirectory(prefix="sovtel-bench-serve-") as tmp:
        root = Path(tmp)
        spans_file = root / "spans.arrow"
        with pa.ipc.new_file(spans_file, spans.schema) as writer:
            writer.write_table(spans)
        with in_process_worker(root / "embedded", spans_file) as in_process, served_store(root / "served") as port:
            clients = [get_client(host="127.0.0.1", port=port, compress=c) for c in (True, False)]
            served, raw = (Workload(c, spans) for c in clients)
            runners = {"in_process": in_process, "served": served.run, "served_uncompressed": raw.run}
            # Alternating the modes spreads the machine's load changes over both.
            for _ in range(REPEATS):
                for op in OPERATIONS:
                    for mode, runner in runners.items():
                        seconds = runner(op)
                        best[mode][op] = max(best[mode].get(op, 0.0), ROWS / seconds)
            for client in clients:
                client.close()
    lines = [
        f"{ROWS:,} span rows ({BATCH_ROWS:,}-row inserts into a table with every shipped tier migration), "
        f"best of {REPEATS} alternating runs; clickhouse-connect in both modes, the service on loopback in a "
        "process of its own.\n",
        "| operation | in-process rows/s | served rows/s (compress=True) | ratio | served rows/s (compress=False) "
        "| ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    worst = float("inf")
    for op in OPERATIONS:
        base = best["in_process"][op]
        ratio, ratio_raw = best["served"][op] / base, best["served_uncompressed"][op] / base
        worst = min(worst, ratio)
        lines.append(f"| {op} | {base:,.0f} | {best['served'][op]:,.0f} | {ratio:.2f} | "
                     f"{best['served_uncompressed'][op]:,.0f} | {ratio_raw:.2f} |")
    verdict = "meets" if worst >= TARGET_RATIO else "misses"
    lines.append(f"\nWorst ratio with clickhouse-connect's default compression: {worst:.2f} ({verdict} the "
                 f"{TARGET_RATIO}× target).")
    numbers: dict[str, Any] = {"machine": machine(), "rows": ROWS, "rows_per_s": best, "worst_ratio": worst}
    return Section("sovtel serve vs in-process chDB", "\n".join(lines), numbers)


def main(argv: list[str] | None = None) -> int:
    """``--worker DIR SPANS``: the in-process child; without arguments: the whole section."""
    ap = argparse.ArgumentParser(prog="python -m bench.serve")
    ap.add_argument("--worker", nargs=2, metavar=("DIR", "SPANS"))
    args = ap.parse_args(argv)
    if args.worker:
        _worker(Path(args.worker[0]), Path(args.worker[1]))
        return 0
    print(run().markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
