"""Tests for collectors.heartbeat: a running collector leaves regular health rows in the store."""

from __future__ import annotations

import time

import pytest

from collectors.heartbeat import Config, Heartbeat
from collectors.testing import InMemoryConsumer
from sovtel.component import ComponentContext
from sovtel.config import parse_config
from sovtel.pipeline import Service
from sovtel.records import Signal
from sovtel.telemetry import Telemetry
from storage.backend import open_store
from tests.waiting import wait_until


def test_snapshot_has_up_and_self_telemetry() -> None:
    """A heartbeat carries sovtel_up = 1 and the pipeline's counters with their labels, on this node."""
    tel = Telemetry()
    tel.component("otlp").received("traces", 5)
    hb = Heartbeat(ComponentContext(name="heartbeat", telemetry=tel.component("heartbeat"), node="gpu-7"), Config())
    rows = hb.snapshot().table.to_pylist()
    by_name = {r["metric_name"]: r for r in rows}
    assert by_name["sovtel_up"]["value"] == 1.0
    assert by_name["sovtel_received_records_total"]["value"] == 5.0
    assert ("component", "otlp") in by_name["sovtel_received_records_total"]["attributes"]
    assert {r["node"] for r in rows} == {"gpu-7"}


def test_start_requires_a_metrics_pipeline() -> None:
    """Wiring the heartbeat to a non-metrics pipeline fails at start-up, not later."""
    hb = Heartbeat(ComponentContext(name="heartbeat", telemetry=Telemetry().component("h")), Config())
    with pytest.raises(ValueError, match="metrics pipeline"):
        hb.start({Signal.TRACES: InMemoryConsumer()})
    hb.shutdown()


def test_beats_repeat_until_shutdown() -> None:
    """The receiver emits one batch per interval and stops on shutdown."""
    consumer = InMemoryConsumer()
    hb = Heartbeat(ComponentContext(name="heartbeat", telemetry=Telemetry().component("h")), Config(interval_s=0.05))
    hb.start({Signal.METRICS: consumer})
    wait_until(lambda: len(consumer.batches) >= 3)
    hb.shutdown()
    seen = len(consumer.batches)
    time.sleep(0.15)
    assert seen >= 3
    assert len(consumer.batches) == seen


def test_heartbeats_land_in_pipeline_health(chdb_dsn: str, unique_db: str) -> None:
    """Through the ordinary metrics pipeline, heartbeats become pipeline_health rows per node."""
    cfg = parse_config({
        "receivers": {"heartbeat": {"interval_s": 0.1}},
        "exporters": {"clickhouse": {"dsn": chdb_dsn, "database": unique_db, "aiact_database": f"{unique_db}_a",
                                     "queue": {"max_delay_s": 0.05}}},
        "service": {"node": "gpu-node-9", "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"metrics": {"receivers": ["heartbeat"], "exporters": ["clickhouse"]}}},
    })
    svc = Service(cfg)
    svc.start()
    store = open_store({"dsn": chdb_dsn})

    def beats() -> list[tuple[str, int, int]]:
        return [tuple(r) for r in store.query_rows(  # type: ignore[misc]
            f"SELECT node, count(), uniqExact(timestamp) FROM {unique_db}.pipeline_health "
            "WHERE metric = 'sovtel_up' GROUP BY node")]

    try:
        rows = wait_until(lambda: (r := beats()) and r[0][2] >= 2 and r)
    finally:
        svc.shutdown()
    assert rows and rows[0][0] == "gpu-node-9"
    assert rows[0][2] >= 2
