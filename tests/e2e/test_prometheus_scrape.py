"""End to end: a pipeline with the simulated NVML receiver and GenAI metrics, scraped by a real Prometheus.

Prometheus (Debian's package; tests/setup.py installs it) runs on 127.0.0.1 with a temporary TSDB,
scrapes the pipeline's /metrics every second, and the test asks its HTTP API PromQL questions.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from processors.genai_metrics import Config as GenAIConfig
from processors.genai_metrics import create as create_genai
from sovtel.component import ComponentContext
from sovtel.config import parse_config
from sovtel.pipeline import Pipeline, Service
from sovtel.records import Signal
from sovtel.telemetry import Telemetry
from storage.backend import Store, StoreConfig
from tests.dashboards.spans import span_batch
from tests.waiting import wait_until

# What a query raises before the first scrape landed.
SCRAPE_PENDING = (OSError, AssertionError, IndexError, KeyError, ValueError)

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (run python -m tests.setup)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture
def pipeline(chdb_dsn: str, unique_db: str) -> Iterator[tuple[Service, Telemetry, int]]:
    """A Service: simulated nvml → metrics → clickhouse exporter, /metrics on a free port; plus a traces pipeline
    with genai_metrics in front of the same exporter (standing in for the OTLP receiver)."""
    config = parse_config({
        "receivers": {"nvml": {"simulated": True, "interval_s": 0.5}},
        "exporters": {"clickhouse": {"dsn": chdb_dsn, "database": unique_db, "aiact_database": f"{unique_db}_ai",
                                     "queue": {"batch_rows": 2000, "max_delay_s": 0.2}}},
        "service": {
            "node": "gpu-node-01",
            "telemetry": {"metrics": {"address": "127.0.0.1:0"}},
            "pipelines": {"metrics": {"receivers": ["nvml"], "exporters": ["clickhouse"]}},
        },
    }, source="e2e")
    tel = Telemetry()
    service = Service(config, tel)
    service.start()
    genai = create_genai(ComponentContext(name="genai_metrics", telemetry=tel.component("genai_metrics")),
                         GenAIConfig())
    traces = Pipeline("traces", Signal.TRACES, [("genai_metrics", genai)], [service.exporters["clickhouse"]],
                      tel.component("pipeline/traces"))
    for seed in range(3):
        traces.consume(span_batch(400, seed=seed))
    assert service.metrics_port is not None
    yield service, tel, service.metrics_port
    service.shutdown()


@pytest.fixture
def prometheus(pipeline: tuple[Service, Telemetry, int], tmp_path: Path) -> Iterator[str]:
    """A Prometheus of our own on loopback, scraping the pipeline every second; stopped afterwards."""
    _, _, metrics_port = pipeline
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: sovtel\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_prometheus_scrapes_gpu_pipeline_and_genai_metrics(
    prometheus: str, pipeline: tuple[Service, Telemetry, int], chdb_dsn: str, unique_db: str
) -> None:
    """Prometheus answers PromQL for GPU gauges, self-telemetry counters and GenAI histogram quantiles with sane
    values, and the GPU rows reached gpu_metrics through the ordinary metrics insert path."""
    def scraped(check: Callable[[], bool]) -> bool:
        return bool(wait_until(check, interval=0.25, ignore=SCRAPE_PENDING))

    assert scraped(lambda: query(prometheus, "gpu_up")[0]["value"][1] == "1"), "no gpu_up 1 scraped"
    assert scraped(lambda: float(query(prometheus, 'sum(sovtel_received_records_total{component="pipeline/metrics"})')
                                 [0]["value"][1]) > 0)

    util = query(prometheus, 'hw_gpu_utilization_ratio{hw_gpu_task="general"}')
    assert {r["metric"]["gpu"] for r in util} == {"0", "1"}
    assert all(0.0 <= float(r["value"][1]) <= 1.0 for r in util)
    assert all(r["metric"]["simulated"] == "true" for r in util)
    power = query(prometheus, "hw_power_watts")
    assert all(0 < float(r["value"][1]) <= 700 for r in power)

    p95 = float(query(prometheus, "histogram_quantile(0.95, sum by (le) "
                            "(gen_ai_client_operation_duration_seconds_bucket))")[0]["value"][1])
    assert 0.01 <= p95 <= 81.92
    ttft50 = float(query(prometheus, "histogram_quantile(0.5, sum by (le) "
                               "(gen_ai_server_time_to_first_token_seconds_bucket))")[0]["value"][1])
    assert 0.03 <= ttft50 <= 0.5  # the generator draws TTFT from 30-400 ms
    tokens = query(prometheus, "sum by (gen_ai_token_type) (gen_ai_client_token_usage_count)")
    assert {r["metric"]["gen_ai_token_type"] for r in tokens} == {"input", "output"}

    service, _, _ = pipeline
    assert service.flush(30)
    store = Store.from_config(StoreConfig(dsn=chdb_dsn, database=unique_db))
    try:
        rows = store.query_rows("SELECT count(), countIf(simulated) FROM gpu_metrics WHERE node = 'gpu-node-01'")
        histos = store.query_rows("SELECT sum(count) FROM genai_histograms WHERE metric = 'gen_ai.client.token.usage'")
    finally:
        store.close()
    assert rows[0][0] > 0 and rows[0][0] == rows[0][1]
    assert histos[0][0] > 0
