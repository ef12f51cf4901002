"""The DP release job and the budget ledger in the store: aggregates leave a tier only while the budget lasts."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from processors import dp
from retention.dp_ledger import LEDGER_TABLE, budget_status, ledger_for
from retention.dp_policy import BudgetPolicy
from retention.dp_release import ReleaseOptions, release_spans
from sovtel.records import Signal, table_from_columns
from storage.backend import Store, open_store
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


@pytest.fixture
def store(chdb_dsn: str) -> Store:
    """A store handle on the shared embedded store, closed after the test."""
    handle = open_store({"dsn": chdb_dsn})
    yield handle  # type: ignore[misc]
    handle.close()


def last_hour(db: str, **fields: object) -> ReleaseOptions:
    """Release options over the last hour of ``db`` into ``db``_pub."""
    now = dt.datetime.now(dt.UTC)
    into: dict[str, object] = {"to_database": f"{db}_pub", **fields}
    return ReleaseOptions(now - dt.timedelta(hours=1), now, db, **into)  # type: ignore[arg-type]


def release(chdb_dir: Path, db: str, *extra: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["privacy", "release", "--store", str(chdb_dir), "--database", db,
                                 "--to-database", f"{db}_pub", "--window", "-1h/now", *extra])
    return r.exit_code, r.output


class TestReleaseJob:
    def test_release_writes_one_row_per_statistic_tenant_and_model(self, store: Store, spans_db: str) -> None:
        """The job reads every span of the window and writes each statistic per tenant and model."""
        outcome = release_spans(store, last_hour(spans_db))
        assert outcome.ok and outcome.spans == 200 and outcome.to == f"{spans_db}_pub.dp_releases"
        rows = store.query_rows(f"SELECT tenant_id, group, statistic FROM {spans_db}_pub.dp_releases")
        assert len(rows) == outcome.released_rows == 2 * 4
        assert {(t, g) for t, g, _ in rows} == {("t-a", "m1"), ("t-b", "m2")}

    def test_an_exhausted_budget_refuses_and_the_status_shows_it(self, store: Store, spans_db: str) -> None:
        """A second release beyond the budget is refused per tenant-window; budget_status counts both outcomes."""
        assert release_spans(store, last_hour(spans_db, budget_per_window=1.5)).ok
        second = release_spans(store, last_hour(spans_db, budget_per_window=1.5))
        assert sorted(t for t, _ in second.refused) == ["t-a", "t-b"] and second.released_rows == 0
        assert "refused 2 tenant-window(s)" in second.describe()
        report = budget_status(store, spans_db, 1.5, 86_400)
        assert report.table == f"{spans_db}.{LEDGER_TABLE}"
        assert {(r.tenant_id, r.releases, r.refusals) for r in report.rows} == {("t-a", 1, 1), ("t-b", 1, 1)}
        assert report.as_json()[0]["budget"] == 1.5

    def test_ledger_for_follows_the_budget_config(self, store: Store, spans_db: str) -> None:
        """ledger_for charges the configured database's ledger table with the configured budget."""
        ledger = ledger_for(store, dp.BudgetConfig(per_window=0.5, database=spans_db), node="n1")
        window = ledger.window_of(dt.datetime.now(dt.UTC))
        assert ledger.charge("t-x", window, 0.5, "r") and not ledger.charge("t-x", window, 0.1, "r")
        assert [(s.spent, s.refusals) for s in ledger.status("t-x")] == [(0.5, 1)]

    @pytest.mark.parametrize(("fields", "needle"), [
        ({"epsilon": 5.0}, "epsilon"),
        ({"to_database": "bad-name"}, "plain identifier"),
    ])
    def test_options_refuse_unsafe_input(self, fields: dict[str, object], needle: str) -> None:
        """Out-of-range epsilon and database names that are not identifiers are refused on construction."""
        with pytest.raises(ValueError, match=needle):
            last_hour("sovtel", **fields)


class TestReleaseCommand:
    def test_release_writes_noisy_aggregates_per_tenant_and_model(self, chdb_dir: Path, chdb_dsn: str,
                                                                  spans_db: str) -> None:
        """A release publishes every statistic per tenant and model, with no identifier beyond the tenant pseudonym."""
        code, out = release(chdb_dir, spans_db, "--epsilon", "1.0")
        assert code == 0, out
        store = open_store({"dsn": chdb_dsn})
        rows = store.query_rows(f"SELECT tenant_id, group, statistic, value FROM {spans_db}_pub.dp_releases")
        store.close()
        assert {(t, g) for t, g, _, _ in rows} == {("t-a", "m1"), ("t-b", "m2")}
        assert {s for _, _, s, _ in rows} == {"count", "mean(input_tokens)", "mean(output_tokens)",
                                              "quantile_0.95(latency_s)"}

    def test_exhausted_budget_refuses_and_exits_1(self, chdb_dir: Path, chdb_dsn: str, spans_db: str) -> None:
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
    def test_bad_options_exit_2(self, chdb_dir: Path, spans_db: str, args: list[str], needle: str) -> None:
        """Out-of-range epsilon, malformed windows and unsafe database names are usage errors."""
        code, out = release(chdb_dir, spans_db, *args)
        assert code == 2
        assert needle in out


def _invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def _max_spent(chdb_dsn: str, db: str) -> float:
    """The most epsilon any tenant was charged in one budget window."""
    store = open_store({"dsn": chdb_dsn})
    try:
        rows = store.query_rows(f"SELECT max(s) FROM (SELECT sum(epsilon) AS s FROM {db}.privacy_budget "
                                "WHERE outcome = 'charged' GROUP BY tenant_id, window_start)")
    finally:
        store.close()
    return float(rows[0][0] or 0.0)


class TestBudgetPolicy:
    def test_no_flag_spends_beyond_the_cap_in_force(self, chdb_dir: Path, chdb_dsn: str, spans_db: str) -> None:
        """After refusals at the default cap of 3, `--budget 100` is refused (exit 2) and nothing more is spent."""
        for _ in range(3):
            release(chdb_dir, spans_db, "--epsilon", "1.0")
        code, out = release(chdb_dir, spans_db, "--epsilon", "1.0")
        assert code == 1 and "refused 2 tenant-window(s)" in out
        code, out = release(chdb_dir, spans_db, "--epsilon", "1.0", "--budget", "100")
        assert code == 2
        assert "above the cap in force (3 epsilon" in out and "set-budget" in out
        code, out = release(chdb_dir, spans_db, "--budget-window-s", "60")
        assert code == 2 and "budget policy" in out
        assert _max_spent(chdb_dsn, spans_db) == pytest.approx(3.0)
        status = CliRunner().invoke(cli, ["privacy", "budget", "--store", str(chdb_dir), "--database", spans_db])
        assert "budget: 3 epsilon per tenant per 86400 s window (the default" in status.stdout

    def test_lowering_is_allowed_without_ceremony_and_holds(self, chdb_dir: Path, chdb_dsn: str,
                                                            spans_db: str) -> None:
        """`set-budget` may lower the cap without actor or reason; every later release is held to it."""
        code, out, err = _invoke("privacy", "set-budget", "--store", str(chdb_dir), "--database", spans_db,
                                 "--aiact-database", f"{spans_db}_aiact", "--epsilon", "1.5")
        assert code == 0, err
        assert "3 per 86400 s -> 1.5 per 86400 s (lower)" in out
        release(chdb_dir, spans_db, "--epsilon", "1.0")
        code, out = release(chdb_dir, spans_db, "--epsilon", "1.0")
        assert code == 1 and "refused 2 tenant-window(s)" in out
        assert _max_spent(chdb_dsn, spans_db) <= 1.5 + 1e-9
        # --budget lowers further for one run, and cannot go back above 1.5.
        assert release(chdb_dir, spans_db, "--epsilon", "0.1", "--budget", "2")[0] == 2

    def test_a_run_can_lower_the_cap_with_budget(self, chdb_dir: Path, spans_db: str) -> None:
        """`--budget 0.5` below the cap in force makes a release of epsilon 1 refused for this run."""
        code, out = release(chdb_dir, spans_db, "--epsilon", "1.0", "--budget", "0.5")
        assert code == 1 and "refused 2 tenant-window(s)" in out

    def test_raising_needs_actor_and_reason_and_is_ledgered(self, chdb_dir: Path, chdb_dsn: str,
                                                            spans_db: str) -> None:
        """A raise without actor or reason is refused; with both, the ledger entry comes first and the cap holds."""
        where = ["--store", str(chdb_dir), "--database", spans_db, "--aiact-database", f"{spans_db}_aiact"]
        code, _, err = _invoke("privacy", "set-budget", *where, "--epsilon", "5")
        assert code == 2 and "--actor and --reason" in err
        code, _, err = _invoke("privacy", "set-budget", *where, "--epsilon", "3", "--window-s", "3600")
        assert code == 2 and "administrative act" in err  # a shorter window is a raise too
        code, _, err = _invoke("privacy", "set-budget", "--store", str(chdb_dir), "--database", spans_db,
                               "--aiact-database", "no_such_ledger", "--epsilon", "5", "--actor", "dpo",
                               "--reason", "quarterly report needs finer aggregates")
        assert code == 2 and "AI-Act ledger" in err
        code, out, err = _invoke("privacy", "set-budget", *where, "--epsilon", "4", "--actor", "dpo",
                                 "--reason", "quarterly report needs finer aggregates")
        assert code == 0, err
        assert "(raise); ledger entry" in out
        store = open_store({"dsn": chdb_dsn})
        try:
            (action, actor, payload), = store.query_rows(
                f"SELECT action, actor, payload FROM {spans_db}_aiact.ledger ORDER BY seq DESC LIMIT 1")
            (seq,), = store.query_rows(f"SELECT max(seq) FROM {spans_db}_aiact.ledger")
            (policy_seq,), = store.query_rows(f"SELECT ledger_seq FROM {spans_db}.privacy_budget_policy")
        finally:
            store.close()
        assert (action, actor) == ("dp.budget.raise", "dpo")
        assert '"reason":"quarterly report needs finer aggregates"' in payload and '"per_window":4.0' in payload
        assert policy_seq == seq
        for _ in range(5):
            release(chdb_dir, spans_db, "--epsilon", "1.0")
        assert _max_spent(chdb_dsn, spans_db) == pytest.approx(4.0)

    def test_a_longer_window_does_not_start_a_fresh_budget(self, store: Store, spans_db: str) -> None:
        """Charges made under a one-day window still count after the window is lengthened to a week."""
        assert release_spans(store, last_hour(spans_db, epsilon=1.0, budget_per_window=1.0)).ok
        BudgetPolicy(store, spans_db).set(dp.BudgetCap(1.0, 7 * 86_400), actor="dpo", ledger=None)
        again = release_spans(store, last_hour(spans_db, epsilon=1.0))
        assert sorted(t for t, _ in again.refused) == ["t-a", "t-b"]
