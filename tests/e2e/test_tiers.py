"""End to end: mixed-tier OTLP traffic is classified and lands only in the stores permitted for its tier."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from app.cli import cli
from collectors.otlp_client import AckingClient, trace_id_of
from sovtel.config import ConfigError, parse_config
from sovtel.pipeline import Service
from storage.backend import open_store
from tests.collectors.otlp.builders import add_attributes

RUN = 0x7133
TAGS = {"cloud.region": "eu-de-1", "deployment.environment": "prod"}
SINKS = {"local": "de", "sovereign": "eu", "public": "us"}

# (case, resource attributes, span attributes, expected tier)
CASES: list[tuple[str, dict[str, str], dict[str, str], str]] = [
    ("declared local", {"sovtel.tier": "local", **TAGS}, {}, "local"),
    ("declared sovereign", {"sovtel.tier": "sovereign", **TAGS}, {}, "sovereign"),
    ("untagged", {**TAGS}, {}, "local"),
    ("unknown tier value", {"sovtel.tier": "internal", **TAGS}, {}, "local"),
    ("missing cloud.region", {"sovtel.tier": "sovereign", "deployment.environment": "prod"}, {}, "local"),
    ("AI-Act high-risk workload", {"sovtel.tier": "sovereign", **TAGS}, {"sovtel.workload.class": "high-risk"},
     "local"),
    ("public span carries identifiers", {"sovtel.tier": "public", **TAGS}, {}, "sovereign"),
]


def tier_config(dsn: str, db: str, data_dir: Path) -> dict[str, Any]:
    """Three tier stores (separate databases of the shared engine), each permitting only its own tier."""
    exporters = {
        f"clickhouse/{tier}": {
            "dsn": dsn, "database": f"{db}_{tier}", "aiact_database": f"{db}_aiact",
            "tiers": [tier], "jurisdiction": jurisdiction, "queue": {"max_delay_s": 0.1},
        }
        for tier, jurisdiction in SINKS.items()
    }
    names = list(exporters)
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"classify": {}},
        "exporters": exporters,
        "service": {
            "data_dir": str(data_dir),
            "country": "DE",
            "telemetry": {"metrics": {"enabled": False}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["classify"], "exporters": names,
                           "unminimised": "test of tier routing"},
                "metrics": {"receivers": ["otlp"], "processors": ["classify"], "exporters": names},
            },
        },
    }


@pytest.fixture
def tier_service(chdb_dsn: str, unique_db: str, tmp_path: Path) -> Iterator[Service]:
    """A running collector with the classify processor and three tier sinks (durable queues under tmp_path)."""
    svc = Service(parse_config(tier_config(chdb_dsn, unique_db, tmp_path)))
    svc.start()
    try:
        yield svc
    finally:
        svc.shutdown()


def metrics_body(tier: str, tenant: str = "") -> bytes:
    """A gauge of three points whose resource declares ``tier`` (and optionally a tenant)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    resource = {"service.name": "chat-api", "sovtel.tier": tier, **TAGS}
    if tenant:
        resource["sovtel.tenant"] = tenant
    add_attributes(rm.resource.attributes, resource)
    m = rm.scope_metrics.add().metrics.add()
    m.name = "gen_ai.requests.dp"
    for i in range(3):
        p = m.gauge.data_points.add()
        p.time_unix_nano = time.time_ns()
        p.as_double = float(i)
    return bytes(req.SerializeToString())


def post(port: int, path: str, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def test_every_row_lands_only_in_its_permitted_store(tier_service: Service, chdb_dsn: str, unique_db: str,
                                                     tmp_path: Path) -> None:
    """Spans and metrics of mixed tiers end up exactly once, each only in the store permitting its tier."""
    port = tier_service.receivers["otlp"].http_port  # type: ignore[attr-defined]
    expected: dict[str, str] = {}
    for k, (_case, resource, span_attrs, tier) in enumerate(CASES):
        client = AckingClient("127.0.0.1", port, RUN, resource={"service.name": "chat-api", **resource})
        numbers = list(range(k * 100, k * 100 + 20))
        assert client.send(numbers, span_attrs) == 200
        client.close()
        expected.update({trace_id_of(RUN, n): tier for n in numbers})
    assert post(port, "/v1/metrics", metrics_body("public")) == 200
    assert post(port, "/v1/metrics", metrics_body("public", tenant="acme")) == 200  # identifiable → sovereign
    assert tier_service.flush(30)

    store = open_store({"dsn": chdb_dsn})
    try:
        found: dict[str, list[str]] = {}
        for tier in SINKS:
            rows = store.query_rows(f"SELECT trace_id, tier FROM {unique_db}_{tier}.spans")
            assert {t for _, t in rows} <= {tier}, f"{tier} store holds rows of another tier"
            for trace_id, _ in rows:
                found.setdefault(trace_id, []).append(tier)
        metric_tiers = {
            tier: store.query_rows(f"SELECT tier, tenant_id FROM {unique_db}_{tier}.metrics") for tier in SINKS
        }
    finally:
        store.close()
    assert found == {tid: [tier] for tid, tier in expected.items()}
    assert metric_tiers["public"] == [("public", "")] * 3
    assert [t for t, _ in metric_tiers["sovereign"]] == ["sovereign"] * 3
    assert metric_tiers["local"] == []
    tier_service.route_log.flush()  # type: ignore[union-attr]
    lines = [json.loads(line) for line in (tmp_path / "audit" / "routes.jsonl").read_text().splitlines()]
    delivered = {(x["tier"], x["sink"]) for x in lines if x["decision"] == "delivered"}
    assert delivered == {("local", "clickhouse/local"), ("sovereign", "clickhouse/sovereign"),
                         ("public", "clickhouse/public")}
    assert all(set(x) == {"minute", "pipeline", "signal", "tier", "sink", "decision", "rows"} for x in lines)


def test_untagged_span_lands_in_local(tier_service: Service, chdb_dsn: str, unique_db: str) -> None:
    """A span with no tags at all (no tier, region or environment) is stored in the local store only."""
    port = tier_service.receivers["otlp"].http_port  # type: ignore[attr-defined]
    client = AckingClient("127.0.0.1", port, RUN + 1, resource={})
    assert client.send([1]) == 200
    assert tier_service.flush(30)
    store = open_store({"dsn": chdb_dsn})
    try:
        where = {t: int(store.query_rows(f"SELECT count() FROM {unique_db}_{t}.spans")[0][0]) for t in SINKS}
    finally:
        store.close()
    assert where == {"local": 1, "sovereign": 0, "public": 0}


def test_routing_local_to_a_public_sink_is_rejected(tmp_path: Path) -> None:
    """`sovtel config validate` refuses a pipeline that would send tier local to a public-only sink, naming both."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "receivers: {otlp: {}}\n"
        "exporters:\n"
        "  clickhouse/public:\n"
        "    host: ch-public.example\n"
        "    jurisdiction: global\n"
        "    tiers: [public]\n"
        "service:\n"
        "  pipelines:\n"
        "    traces/local: {receivers: [otlp], exporters: [clickhouse/public], tiers: [local]}\n"
    )
    result = CliRunner().invoke(cli, ["config", "validate", str(cfg)])
    assert result.exit_code == 2
    assert "tier 'local'" in result.output and "clickhouse/public" in result.output
    assert "permits public" in result.output


@pytest.mark.parametrize(
    ("exporters", "pipeline", "message"),
    [
        ({"clickhouse/eu": {"host": "ch.example"}}, {"exporters": ["clickhouse/eu"]}, "must declare the tiers"),
        ({"clickhouse/eu": {"host": "ch.example", "tiers": ["secret"]}}, {"exporters": ["clickhouse/eu"]},
         "unknown tier 'secret'"),
        ({"clickhouse/eu": {"host": "ch.example", "tiers": ["sovereign"]}}, {"exporters": ["clickhouse/eu"]},
         "tier 'local' would go to a sink that does not permit it"),
        ({"clickhouse/eu": {"host": "ch.example", "tiers": ["sovereign"]}},
         {"exporters": ["clickhouse/eu"], "tiers": ["public"]}, "permits none of the tiers"),
        ({"clickhouse": {}}, {"exporters": ["clickhouse"], "tiers": ["restricted"]}, "unknown tier 'restricted'"),
    ],
)
def test_invalid_tier_routing_fails_validation(exporters: dict[str, Any], pipeline: dict[str, Any],
                                               message: str) -> None:
    """Configurations that could send a tier to a non-permitted sink, or nowhere, fail with a clear message."""
    raw = {"receivers": {"otlp": {}}, "exporters": exporters,
           "service": {"pipelines": {"traces": {"receivers": ["otlp"], **pipeline}}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert any(message in e for e in err.value.errors), err.value.errors


def test_valid_tier_routing_passes_validation() -> None:
    """A pipeline whose every tier has a permitted sink (and every sink a carried tier) is valid."""
    raw = {"receivers": {"otlp": {}},
           "exporters": {"clickhouse/de": {"host": "ch.de.example", "tiers": ["local", "sovereign"],
                                           "jurisdiction": "DE"},
                         "clickhouse/pub": {"host": "ch.example", "tiers": ["public"]}},
           "service": {"country": "DE", "pipelines": {"traces": {"receivers": ["otlp"],
                                                "exporters": ["clickhouse/de", "clickhouse/pub"],
                                                "unminimised": "test of tier routing"}}}}
    assert len(parse_config(raw).service.pipelines) == 1
