"""Tests for processors.dp: bounds are mandatory, epsilon stays in range, budgets are enforced and
persist in ClickHouse across restarts, and the noise has the scale epsilon and sensitivity imply."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from diffprivlib import tools
from scipy import stats

from processors import dp
from retention.dp_ledger import ClickHouseLedger
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate

# Yesterday's midnight (UTC): a whole budget window, inside every retention, whatever the date.
W = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)


def spans(n: int = 40, tenant: str = "t1") -> object:
    return table_from_columns(
        Signal.TRACES,
        {
            "timestamp": [W + dt.timedelta(minutes=i) for i in range(n)],
            "tenant_id": [tenant] * n,
            "request_model": ["llama-3.1-8b-instruct" if i % 2 else "mistral-small-24b" for i in range(n)],
            "output_tokens": [100 + i for i in range(n)],
            "duration_ns": [200_000_000 + i * 1_000_000 for i in range(n)],
        },
    )


SPEC = dp.ReleaseSpec(
    "tokens-latency",
    (
        dp.Statistic("count"),
        dp.Statistic("sum", "output_tokens", (0, 4096)),
        dp.Statistic("mean", "output_tokens", (0, 4096)),
        dp.Statistic("quantile", "latency_s", (0, 30), quantile=0.95),
        dp.Statistic("histogram", "latency_s", (0, 2), bins=4),
    ),
    epsilon=0.5,
)


class TestBounds:
    @pytest.mark.parametrize("kind", ["sum", "mean", "quantile", "histogram"])
    def test_statistics_need_explicit_bounds(self, kind: str) -> None:
        """Every statistic of a value refuses to exist without bounds."""
        with pytest.raises(dp.BoundsRequiredError):
            dp.Statistic(kind, "output_tokens", None, quantile=0.5)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bounds", [(5.0, 5.0), (10.0, 1.0), (0.0, float("inf"))])
    def test_bounds_must_be_a_finite_interval(self, bounds: tuple[float, float]) -> None:
        """Empty, inverted or infinite bounds are refused."""
        with pytest.raises(dp.BoundsRequiredError):
            dp.Statistic("mean", "output_tokens", bounds)

    def test_privacy_leak_warning_is_an_error(self) -> None:
        """diffprivlib's PrivacyLeakWarning (bounds taken from the data) is raised as BoundsRequiredError."""
        with pytest.raises(dp.BoundsRequiredError), dp.strict_privacy():
            tools.mean(np.arange(10.0), epsilon=0.5)

    @pytest.mark.parametrize("epsilon", [0.05, 1.5, 0.0, float("nan")])
    def test_epsilon_outside_range_is_refused(self, epsilon: float) -> None:
        """A release with epsilon outside [0.1, 1.0] is refused before any noise is drawn."""
        ledger = dp.BudgetLedger(dp.InMemoryLedger(), 10.0)
        spec = dp.ReleaseSpec("x", (dp.Statistic("count"),), epsilon)
        with pytest.raises(dp.EpsilonOutOfRangeError):
            dp.release(spans(), spec, ledger)  # type: ignore[arg-type]

    def test_config_validation_reports_every_problem(self) -> None:
        """Out-of-range epsilon, inverted bounds and non-numeric columns are all reported."""
        cfg = dp.Config(perturb=[dp.FieldNoise(column="body", lower=5, upper=1, epsilon=3)])
        problems = dp.validate_config(cfg)
        assert len(problems) == 3


class TestRelease:
    def test_release_has_every_statistic_per_group(self) -> None:
        """One row per statistic (one per bin for histograms) per model group, epsilon split evenly."""
        ledger = dp.BudgetLedger(dp.InMemoryLedger(), 3.0)
        res = dp.release(spans(), SPEC, ledger, random_state=7)  # type: ignore[arg-type]
        rows = res.table.to_pylist()
        assert {r["group"] for r in rows} == {"llama-3.1-8b-instruct", "mistral-small-24b"}
        assert len(rows) == 2 * (4 + 4)
        assert {r["epsilon"] for r in rows} == {0.1}
        assert res.refused == []
        count = next(r["value"] for r in rows if r["statistic"] == "count" and r["group"] == "mistral-small-24b")
        assert abs(count - 20) < 60  # noisy, but a count and not garbage

    def test_exhausted_budget_refuses_and_records(self) -> None:
        """When a tenant's window budget cannot pay, the release is refused and the refusal is in the ledger."""
        backend = dp.InMemoryLedger()
        ledger = dp.BudgetLedger(backend, budget_per_window=1.0)
        assert dp.release(spans(), SPEC, ledger).refused == []  # type: ignore[arg-type]
        assert dp.release(spans(), SPEC, ledger).refused == []  # type: ignore[arg-type]
        third = dp.release(spans(), SPEC, ledger)  # type: ignore[arg-type]
        assert third.refused == [("t1", W)] and third.table.num_rows == 0
        assert [e.outcome for e in backend.entries] == ["charged", "charged", "refused"]
        status = ledger.status("t1")[0]
        assert (status.spent, status.remaining, status.refusals) == (1.0, 0.0, 1)

    def test_require_raises_budget_exhausted(self) -> None:
        """The raising form refuses with BudgetExhaustedError after recording."""
        backend = dp.InMemoryLedger()
        ledger = dp.BudgetLedger(backend, 0.5)
        ledger.require("t", W, 0.5, "r")
        with pytest.raises(dp.BudgetExhaustedError):
            ledger.require("t", W, 0.1, "r")
        assert backend.entries[-1].outcome == "refused"

    def test_tenants_have_separate_budgets(self) -> None:
        """One tenant's spending does not use another's budget."""
        ledger = dp.BudgetLedger(dp.InMemoryLedger(), 0.5)
        assert ledger.charge("a", W, 0.5, "r")
        assert ledger.charge("b", W, 0.5, "r")
        assert not ledger.charge("a", W, 0.1, "r")

    def test_caps_apply_per_tenant(self) -> None:
        """With caps, each tenant is held to its own cap and its status is measured against it."""
        caps = {"a": dp.BudgetCap(0.2, 86_400)}
        ledger = dp.BudgetLedger(dp.InMemoryLedger(), 1.0, caps=lambda t: caps.get(t, dp.BudgetCap(1.0, 86_400)))
        assert ledger.charge("a", W, 0.2, "r") and not ledger.charge("a", W, 0.1, "r")
        assert ledger.charge("b", W, 0.9, "r")
        assert {(s.tenant_id, s.budget) for s in ledger.status()} == {("a", 0.2), ("b", 1.0)}

    def test_a_new_window_length_does_not_forget_earlier_charges(self) -> None:
        """Charges of a day window count against a week window that contains it (no fresh budget)."""
        backend = dp.InMemoryLedger()
        daily = dp.BudgetLedger(backend, 1.0, 86_400)
        assert daily.charge("a", daily.window_of(W), 1.0, "r")
        weekly = dp.BudgetLedger(backend, 1.0, 7 * 86_400)
        assert not weekly.charge("a", weekly.window_of(W), 0.1, "r")


class TestLedgerPersistence:
    def test_spent_budget_survives_a_restart(self, chdb_dsn: str, unique_db: str) -> None:
        """Charges written through one Store are seen by a new Store after the first is closed."""
        store = Store.from_config(StoreConfig(dsn=chdb_dsn))
        migrate(store, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_ai"), include_aiact=False)
        first = dp.BudgetLedger(ClickHouseLedger(store, unique_db), budget_per_window=1.0)
        assert dp.release(spans(tenant="acme"), SPEC, first).refused == []  # type: ignore[arg-type]
        store.close()

        reopened = Store.from_config(StoreConfig(dsn=chdb_dsn))
        second = dp.BudgetLedger(ClickHouseLedger(reopened, unique_db), budget_per_window=1.0)
        assert second.backend.spent("acme", W) == pytest.approx(0.5)
        assert dp.release(spans(tenant="acme"), SPEC, second).refused == []  # type: ignore[arg-type]
        refused = dp.release(spans(tenant="acme"), SPEC, second)  # type: ignore[arg-type]
        assert refused.refused == [("acme", W)]
        rows = reopened.query_rows(
            f"SELECT outcome, count() FROM {unique_db}.privacy_budget GROUP BY outcome ORDER BY outcome"
        )
        assert rows == [("charged", 2), ("refused", 1)]
        status = second.status("acme")[0]
        assert (status.window_start, status.spent, status.refusals) == (W, pytest.approx(1.0), 1)
        reopened.close()


class TestNoise:
    def test_laplace_scale_matches_sensitivity_over_epsilon(self) -> None:
        """KS test: the noise is Laplace with scale sensitivity/epsilon (and not with half or double)."""
        rng = np.random.default_rng(20261124)
        sensitivity, epsilon = 4096.0, 0.5
        noise = dp.laplace_noise(20_000, sensitivity, epsilon, rng)
        scale = sensitivity / epsilon
        assert stats.kstest(noise, "laplace", args=(0, scale)).pvalue > 0.01
        assert stats.kstest(noise, "laplace", args=(0, scale * 2)).pvalue < 1e-6
        assert stats.kstest(noise, "laplace", args=(0, scale / 2)).pvalue < 1e-6

    def test_diffprivlib_sum_noise_matches_its_scale(self) -> None:
        """The released sum's noise has the Laplace variance 2·(range/epsilon)² (diffprivlib, fixed seed)."""
        rs = np.random.RandomState(11)
        values = np.full(1000, 2000.0)
        draws = np.array(
            [dp.dp_statistic(values, dp.Statistic("sum", "x", (0, 4096)), 1.0, rs)[0][1] for _ in range(3000)]
        )
        noise = draws - values.sum()
        assert stats.kstest(noise, "laplace", args=(0, 4096.0)).pvalue > 0.01

    def test_processor_clips_keeps_types_and_nulls(self) -> None:
        """Per-record noise stays within bounds, keeps integer columns integer and nulls null."""
        cfg = dp.Config(perturb=[
            dp.FieldNoise(column="output_tokens", lower=0, upper=100, epsilon=0.5),
            dp.FieldNoise(column="ttft_s", lower=0, upper=2, epsilon=1.0),
        ])  # fmt: skip
        p = dp.Perturb(
            ComponentContext(name="dp", telemetry=Telemetry().component("dp")), cfg, np.random.default_rng(1)
        )
        table = table_from_columns(
            Signal.TRACES, {"output_tokens": [5000, 50, 0] * 100, "ttft_s": [0.2, None, 9.0] * 100}
        )
        out = p(Batch(Signal.TRACES, table)).table
        tokens = out.column("output_tokens").to_numpy()
        assert (
            tokens.min() >= 0
            and tokens.max() <= 100
            and out.schema.field("output_tokens").type == table.schema.field("output_tokens").type
        )
        ttft = out.column("ttft_s").to_pylist()
        assert ttft[1::3] == [None] * 100
        assert all(0 <= v <= 2 for v in ttft if v is not None)
        assert len(set(tokens.tolist())) > 10  # noise was added

    def test_perturbation_is_vectorised(self) -> None:
        """100k records are perturbed by one vectorised draw per column, not one call per record."""
        cfg = dp.Config(perturb=[dp.FieldNoise(column="output_tokens", lower=0, upper=4096, epsilon=0.5)])
        p = dp.Perturb(ComponentContext(name="dp", telemetry=Telemetry().component("dp")), cfg)
        table = table_from_columns(Signal.TRACES, {"output_tokens": np.arange(100_000) % 4096})
        draws: list[int] = []
        real = dp.laplace_noise

        def counted(n: int, *args: object) -> object:
            draws.append(n)
            return real(n, *args)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dp, "laplace_noise", counted)
            out = p(Batch(Signal.TRACES, table))
        assert draws == [100_000] and out.rows == 100_000
