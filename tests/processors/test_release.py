"""Tests for `sovtel privacy release`: DP aggregates leave a tier only while the budget lasts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from processors.dp import Statistic, dp_statistic
from sovtel.records import Signal, table_from_columns
from storage.backend import open_store
from storage.migrate import SchemaSettings, migrate


@pytest.fixture
def spans_db(chdb_dsn: str, unique_db: str) -> str:
    """A tier database holding 200 recent chat spans of two tenants and two models."""
    store = open_store({"dsn": chdb_dsn})
    migrate(store, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact"))
    n = 200
    now = time.time_ns()
    table = table_from_columns(Signal.TRACES, {
        "timestamp": [now - i * 1_000_000 for i in range(n)],
        "trace_id": [f"{i:032x}" for i in range(n)], "operation": ["chat"] * n,
        "tenant_id": [("t-a", "t-b")[i % 2] for i in range(n)],
        "request_model": [("m1", "m2")[i % 2] for i in range(n)],
        "input_tokens": [100] * n, "output_tokens": [50] * n, "duration_ns": [2_000_000_000] * n,
    })
    store.insert_arrow(f"{unique_db}.spans", table)
    store.close()
    return unique_db


def release(chdb_dir: Path, db: str, *extra: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["privacy", "release", "--store", str(chdb_dir), "--database", db,
                                 "--to-database", f"{db}_pub", "--window", "-1h/now", *extra])
    return r.exit_code, r.output


def test_release_writes_noisy_aggregates_per_tenant_and_model(chdb_dir: Path, chdb_dsn: str, spans_db: str) -> None:
    """A release publishes every statistic per tenant and model, with no identifier beyond the tenant pseudonym."""
    code, out = release(chdb_dir, spans_db, "--epsilon", "1.0")
    assert code == 0, out
    store = open_store({"dsn": chdb_dsn})
    rows = store.query_rows(f"SELECT tenant_id, group, statistic, value FROM {spans_db}_pub.dp_releases")
    store.close()
    assert {(t, g) for t, g, _, _ in rows} == {("t-a", "m1"), ("t-b", "m2")}
    assert {s for _, _, s, _ in rows} == {"count", "mean(input_tokens)", "mean(output_tokens)",
                                          "quantile_0.95(latency_s)"}


def test_exhausted_budget_refuses_and_exits_1(chdb_dir: Path, chdb_dsn: str, spans_db: str) -> None:
    """Releases beyond the per-window budget are refused, recorded in the ledger, and exit 1."""
    assert release(chdb_dir, spans_db, "--epsilon", "1.0", "--budget", "1.5")[0] == 0
    code, out = release(chdb_dir, spans_db, "--epsilon", "1.0", "--budget", "1.5")
    assert code == 1
    assert "refused 2 tenant-window(s)" in out
    store = open_store({"dsn": chdb_dsn})
    (refusals,), = store.query_rows(f"SELECT count() FROM {spans_db}.privacy_budget WHERE outcome = 'refused'")
    store.close()
    assert refusals == 2


@pytest.mark.parametrize(("args", "needle"), [
    (["--epsilon", "5"], "epsilon"),
    (["--window", "yesterday"], "not a window"),
    (["--to-database", "bad-name"], "plain identifier"),
])
def test_bad_options_exit_2(chdb_dir: Path, spans_db: str, args: list[str], needle: str) -> None:
    """Out-of-range epsilon, malformed windows and unsafe database names are usage errors."""
    code, out = release(chdb_dir, spans_db, *args)
    assert code == 2
    assert needle in out


def test_dp_count_is_unbiased_and_not_capped_at_the_true_count() -> None:
    """The released count's noise is symmetric around the true count (no truncation that reveals it)."""
    rng = np.random.RandomState(3)
    values = np.array([dp_statistic(np.ones(100), Statistic("count"), 0.5, rng)[0][1] for _ in range(3000)])
    assert abs(values.mean() - 100) < 0.5
    assert (values > 100).mean() > 0.3
