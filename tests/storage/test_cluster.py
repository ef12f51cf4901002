"""Cluster DDL: ON CLUSTER, Replicated engines and Distributed tables, each statement checked by ClickHouse's parser."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from app.cli import cli
from storage.backend import StoreError
from storage.clickhouse import Config as ExporterConfig
from storage.cluster import ClusterConfig, cluster_settings, distributed_statements, render_cluster, split_statements
from storage.migrate import SchemaSettings


def parse(store, statement: str) -> str:  # type: ignore[no-untyped-def]
    """ClickHouse's own formatting of ``statement`` (raises StoreError if it does not parse)."""
    return str(store.query_rows("SELECT formatQuery({q:String})", {"q": statement})[0][0])


@pytest.mark.parametrize("distributed", [False, True])
def test_every_cluster_statement_parses(store, distributed: bool) -> None:  # type: ignore[no-untyped-def]
    """Each statement of the cluster schema is accepted by ClickHouse's parser and keeps ON CLUSTER."""
    sql = render_cluster(SchemaSettings(), ClusterConfig(name="prod", distributed=distributed))
    statements = split_statements(sql)
    assert len(statements) > 20
    for stmt in statements:
        formatted = parse(store, stmt)
        if not stmt.startswith("INSERT"):
            assert "ON CLUSTER prod" in formatted, stmt


def test_merge_tree_engines_are_replicated(store) -> None:  # type: ignore[no-untyped-def]
    """With replicated: true every MergeTree-family engine in the schema is a Replicated one."""
    statements = split_statements(render_cluster(SchemaSettings(), ClusterConfig(name="prod")))
    engines = [m for s in statements for m in re.findall(r"ENGINE = (\w+)", parse(store, s))]
    assert engines and all(e.startswith("Replicated") for e in engines if "MergeTree" in e)


def test_distributed_tables_cover_every_tier_table() -> None:
    """Distributed tables are made for every table of the tier database and point at it."""
    settings = cluster_settings(SchemaSettings(database="tel"), ClusterConfig(name="c1", distributed=True))
    stmts = distributed_statements(settings, ClusterConfig(name="c1", distributed=True))
    names = {re.search(r"AS tel\.(\w+) ", s).group(1) for s in stmts}  # type: ignore[union-attr]
    assert {"spans", "logs", "metrics", "gpu_metrics", "quality_scores"} <= names
    assert all("Distributed(c1, tel, " in s for s in stmts)


def test_the_parser_check_can_fail(store) -> None:  # type: ignore[no-untyped-def]
    """A malformed statement is refused by the parser (so the checks above are meaningful)."""
    with pytest.raises(StoreError):
        parse(store, "CREATE TABLE x ON CLUSTER (a UInt8) ENGINE = ReplicatedMergeTree ORDER BY")


@pytest.mark.parametrize(
    ("cluster", "message"),
    [({"name": "prod-1"}, "plain identifier"), ({"name": "c", "sharding_key": "rand(); DROP"}, "single"),
     ({"name": "c", "extra": 1}, "Extra inputs")],
)
def test_invalid_cluster_config_is_rejected(cluster: dict[str, object], message: str) -> None:
    """Cluster names are identifiers and the sharding key a single expression."""
    with pytest.raises(ValidationError, match=message):
        ClusterConfig.model_validate(cluster)


def test_exporter_cluster_option_sets_schema_settings() -> None:
    """The clickhouse exporter's cluster section renders its migrations ON CLUSTER with Replicated engines."""
    cfg = ExporterConfig.model_validate({"host": "ch.example", "tiers": ["local"], "cluster": {"name": "prod"}})
    settings = cfg.schema_settings()
    assert settings.cluster == "prod" and settings.engine_prefix == "Replicated"


def test_cli_prints_the_cluster_schema() -> None:
    """`sovtel schema cluster --print` prints Replicated, ON CLUSTER DDL."""
    result = CliRunner().invoke(cli, ["schema", "cluster", "--print", "--name", "prod", "--distributed"])
    assert result.exit_code == 0, result.output
    assert "ReplicatedMergeTree" in result.output and "ENGINE = Distributed(prod" in result.output
