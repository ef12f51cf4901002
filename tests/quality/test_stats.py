"""Tests for quality.stats: interval and test correctness, including calibration under the null."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from quality.stats import (
    categorical_drift,
    chi_square_homogeneity,
    holm,
    numeric_drift,
    psi,
    quantile_bins,
    two_proportion_test,
    wilson_interval,
)


class TestWilson:
    @pytest.mark.parametrize(
        ("x", "n", "low", "high"),
        [
            (0, 10, 0.0, 0.2775),
            (5, 10, 0.2366, 0.7634),
            (10, 10, 0.7225, 1.0),
            (2, 1000, 0.00055, 0.00726),
        ],
    )
    def test_known_values(self, x: int, n: int, low: float, high: float) -> None:
        """Bounds match published Wilson 95% intervals (e.g. 0/10 → [0, 0.2775])."""
        lo, hi = wilson_interval([x], [n])
        assert lo[0] == pytest.approx(low, abs=5e-4) and hi[0] == pytest.approx(high, abs=5e-4)

    def test_zero_trials_give_nan(self) -> None:
        """No trials means no interval (NaN), not an error."""
        lo, hi = wilson_interval([0], [0])
        assert np.isnan(lo[0]) and np.isnan(hi[0])

    @pytest.mark.parametrize(("x", "n", "confidence"), [(5, 3, 0.95), (-1, 3, 0.95), (1, 3, 1.0)])
    def test_bad_input(self, x: int, n: int, confidence: float) -> None:
        """Successes outside [0, n] or a confidence outside (0, 1) are rejected."""
        with pytest.raises(ValueError):
            wilson_interval([x], [n], confidence)

    def test_coverage(self) -> None:
        """Over many binomial draws the 95% interval covers the true rate about 95% of the time."""
        rng = np.random.default_rng(3)
        n, p = 200, 0.07
        x = rng.binomial(n, p, size=4000)
        lo, hi = wilson_interval(x, np.full_like(x, n))
        coverage = float(np.mean((lo <= p) & (p <= hi)))
        assert 0.93 <= coverage <= 0.97


class TestTwoProportions:
    def test_worse_candidate(self) -> None:
        """5% vs 10% of 1000 gives the pooled z = 4.245 and its one-sided p-value 1.09e-5."""
        res = two_proportion_test(50, 1000, 100, 1000)
        assert res.method == "pooled_z" and res.difference == pytest.approx(0.05)
        assert res.statistic == pytest.approx(4.2448, abs=1e-3)
        assert res.p_value == pytest.approx(stats.norm.sf(4.2448), rel=1e-3)

    def test_better_candidate_is_not_worse(self) -> None:
        """A lower candidate rate gives a one-sided p-value near 1."""
        assert two_proportion_test(100, 1000, 50, 1000).p_value > 0.99

    def test_small_counts_use_fisher(self) -> None:
        """With expected counts below 5 the exact test is used and agrees with scipy's Fisher test."""
        res = two_proportion_test(1, 40, 6, 40)
        expected = stats.fisher_exact([[6, 34], [1, 39]], alternative="greater").pvalue
        assert res.method == "fisher_exact" and res.p_value == pytest.approx(expected)

    @pytest.mark.parametrize(("args"), [(1, 0, 1, 10), (11, 10, 1, 10), (-1, 10, 1, 10)])
    def test_bad_counts(self, args: tuple[int, int, int, int]) -> None:
        """Zero trials or impossible counts are rejected."""
        with pytest.raises(ValueError):
            two_proportion_test(*args)

    def test_null_false_positive_rate(self) -> None:
        """Under equal rates the test rejects at most about alpha of the time (it is not anti-conservative)."""
        rng = np.random.default_rng(11)
        rejections = 0
        for _ in range(1000):
            a, b = rng.binomial(300, 0.08), rng.binomial(300, 0.08)
            rejections += two_proportion_test(int(a), 300, int(b), 300).p_value < 0.05
        assert rejections / 1000 <= 0.065


class TestHelpers:
    def test_holm(self) -> None:
        """Holm adjustment matches the textbook example and keeps input order."""
        assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])

    def test_psi_identical_and_shifted(self) -> None:
        """PSI is 0 for identical bins and grows with the shift."""
        assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
        assert psi([50, 50], [80, 20]) > psi([50, 50], [60, 40]) > 0

    def test_quantile_bins_merge_ties(self) -> None:
        """Reference quantiles that coincide (heavy ties) merge into fewer bins instead of empty ones."""
        ref = np.array([1.0] * 90 + [2.0] * 10)
        r, c = quantile_bins(ref, ref, 10)
        assert len(r) == 2 and r.sum() == 100 and (r == c).all()

    def test_chi_square_pools_sparse_categories(self) -> None:
        """Categories with tiny expected counts are pooled rather than inflating the statistic."""
        _, p = chi_square_homogeneity([500, 3, 1, 0], [500, 0, 2, 1])
        assert p > 0.05
        _, p_shift = chi_square_homogeneity([500, 500], [300, 700])
        assert p_shift < 1e-10

    @pytest.mark.parametrize(("ref", "cur"), [([1, 0], [0, 0]), ([5], [7])])
    def test_chi_square_degenerate(self, ref: list[int], cur: list[int]) -> None:
        """With one category or an empty sample nothing can differ: p = 1."""
        assert chi_square_homogeneity(ref, cur)[1] == 1.0


class TestFeatureTests:
    @pytest.mark.parametrize(
        ("values", "test"),
        [(np.arange(5.0), "chi_square"), (np.linspace(0, 1, 500), "ks")],
    )
    def test_choice_of_test(self, values: np.ndarray, test: str) -> None:
        """Few distinct values use chi-square on the counts; continuous values use KS."""
        assert numeric_drift("f", np.tile(values, 40), np.tile(values, 40)).test == test

    @pytest.mark.parametrize(
        "draw",
        [
            lambda rng, n: rng.poisson(1.5, n).astype(float),  # heavily tied, few levels → chi-square
            lambda rng, n: rng.geometric(0.05, n).astype(float),  # tied integers, many levels → KS with ties
            lambda rng, n: rng.lognormal(4, 0.7, n),  # continuous → KS
        ],
    )
    def test_null_calibration(self, draw) -> None:  # type: ignore[no-untyped-def]
        """On identical distributions (ties included) p < 0.05 happens at most about 5% of the time."""
        rng = np.random.default_rng(5)
        ps = [numeric_drift("f", draw(rng, 150), draw(rng, 150)).p_value for _ in range(300)]
        assert np.mean(np.array(ps) < 0.05) <= 0.08

    def test_categorical_shift_and_summary(self) -> None:
        """A changed category mix is detected and summarised as the share of the focus category."""
        ref = ["stop"] * 900 + ["length"] * 100
        cur = ["stop"] * 700 + ["length"] * 300
        res = categorical_drift("finish_reason", ref, cur, focus="length")
        assert res.p_value < 1e-10 and res.reference_summary == 0.1 and res.current_summary == 0.3

    def test_no_data(self) -> None:
        """An empty sample is reported with p = 1 and a note, not an exception."""
        assert numeric_drift("f", [], [1.0]).note == "no data"
        assert categorical_drift("c", [], ["a"]).note == "no data"
