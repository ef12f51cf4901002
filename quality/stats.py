"""Statistics for quality monitoring: Wilson intervals, two-proportion tests, PSI, KS and chi-square drift tests.

Every test returns an effect size with its p-value; drift is declared only when both are large
(p below alpha after a Holm correction over features, and PSI above its threshold), so small
samples cannot trip PSI alone and huge samples cannot trip a p-value alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

Alternative = Literal["greater", "less", "two-sided"]


def wilson_interval(successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95) -> tuple[NDArray[np.float64],
                                                                                                   NDArray[np.float64]]:
    """Wilson score interval for binomial proportions (vectorised); (nan, nan) where trials is 0."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie between 0 and trials")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # At x = 0 or x = n the exact bound is 0 or 1; floating point can leave 1e-17 instead.
    low = np.where((x == 0) & (n > 0), 0.0, low)
    high = np.where((x == n) & (n > 0), 1.0, high)
    return low, high


@dataclass(frozen=True)
class ProportionTest:
    """Result of comparing two proportions: the candidate's rate minus the baseline's, and the test."""

    baseline_rate: float
    candidate_rate: float
    difference: float
    statistic: float
    p_value: float
    method: str


def two_proportion_test(
    baseline_x: int, baseline_n: int, candidate_x: int, candidate_n: int, alternative: Alternative = "greater"
) -> ProportionTest:
    """Is the candidate's rate higher ("greater") than the baseline's? Pooled z-test, or Fisher's exact
    test when any expected cell count is below 5 (where the normal approximation is unreliable)."""
    for x, n in ((baseline_x, baseline_n), (candidate_x, candidate_n)):
        if n <= 0 or x < 0 or x > n:
            raise ValueError(f"need 0 <= successes <= trials and trials > 0 (got {x}/{n})")
    p1, p2 = baseline_x / baseline_n, candidate_x / candidate_n
    pooled = (baseline_x + candidate_x) / (baseline_n + candidate_n)
    expected = [baseline_n * pooled, baseline_n * (1 - pooled), candidate_n * pooled, candidate_n * (1 - pooled)]
    if min(expected) < 5:
        table = [[candidate_x, candidate_n - candidate_x], [baseline_x, baseline_n - baseline_x]]
        res = stats.fisher_exact(table, alternative=alternative)
        odds = float(res.statistic) if math.isfinite(float(res.statistic)) else float("inf")
        return ProportionTest(p1, p2, p2 - p1, odds, float(res.pvalue), "fisher_exact")
    se = math.sqrt(pooled * (1 - pooled) * (1 / baseline_n + 1 / candidate_n))
    z = (p2 - p1) / se if se > 0 else 0.0
    if alternative == "greater":
        p = float(stats.norm.sf(z))
    elif alternative == "less":
        p = float(stats.norm.cdf(z))
    else:
        p = float(2 * stats.norm.sf(abs(z)))
    return ProportionTest(p1, p2, p2 - p1, z, p, "pooled_z")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def psi(reference: ArrayLike, current: ArrayLike) -> float:
    """Population stability index between two binned count vectors (0.5 added to every bin to avoid log 0)."""
    ref = np.asarray(reference, dtype=np.float64) + 0.5
    cur = np.asarray(current, dtype=np.float64) + 0.5
    p, q = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def quantile_bins(reference: NDArray[np.float64], current: NDArray[np.float64], bins: int) -> tuple[NDArray[np.int64],
                                                                                                    NDArray[np.int64]]:
    """Counts of both samples in bins (e_i-1, e_i] cut at the reference's quantiles. Edges are data points
    (``inverted_cdf``) and ties merge bins, so no reference bin is empty."""
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))
    inner = inner[inner < np.max(reference)]
    ref_idx = np.searchsorted(inner, reference, side="left")
    cur_idx = np.searchsorted(inner, current, side="left")
    k = len(inner) + 1
    return np.bincount(ref_idx, minlength=k).astype(np.int64), np.bincount(cur_idx, minlength=k).astype(np.int64)


def chi_square_homogeneity(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[float, float]:
    """Chi-square test that two samples share one categorical distribution; sparse categories are pooled
    so every expected count is at least 5. Returns (statistic, p-value); p = 1 when nothing can differ."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    n1, n2 = ref.sum(), cur.sum()
    if n1 == 0 or n2 == 0 or len(ref) < 2:
        return 0.0, 1.0
    # Pool the rarest categories into one until every expected count reaches 5 (Cochran's rule).
    order = np.argsort(ref + cur)
    ref, cur = ref[order], cur[order]
    while len(ref) > 2:
        total = ref + cur
        expected_min = min((total * n1 / (n1 + n2)).min(), (total * n2 / (n1 + n2)).min())
        if expected_min >= 5:
            break
        ref = np.concatenate([[ref[0] + ref[1]], ref[2:]])
        cur = np.concatenate([[cur[0] + cur[1]], cur[2:]])
        resort = np.argsort(ref + cur)
        ref, cur = ref[resort], cur[resort]
    if len(ref) < 2:
        return 0.0, 1.0
    table = np.vstack([ref, cur])
    statistic, p, _, _ = stats.chi2_contingency(table, correction=len(ref) == 2)
    return float(statistic), float(p)


FeatureKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureDrift:
    """The outcome of one feature's drift test."""

    feature: str
    kind: FeatureKind
    test: str
    n_reference: int
    n_current: int
    statistic: float
    p_value: float
    psi: float
    reference_summary: float
    current_summary: float
    p_adjusted: float = float("nan")
    drift: bool = False
    note: str = ""


def numeric_drift(name: str, reference: ArrayLike, current: ArrayLike, *, bins: int = 10,
                  max_discrete_levels: int = 20) -> FeatureDrift:
    """Drift of a numeric feature: KS test when values are (nearly) continuous, chi-square on the value
    counts when the pooled sample has at most ``max_discrete_levels`` distinct values; PSI on reference
    quantile bins either way. NaNs are ignored; summaries are medians (KS) or means (chi-square)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return FeatureDrift(name, "numeric", "none", len(ref), len(cur), 0.0, 1.0, 0.0, math.nan, math.nan,
                            note="no data")
    levels = np.unique(np.concatenate([ref, cur]))
    if len(levels) <= max_discrete_levels:
        ref_counts = np.bincount(np.searchsorted(levels, ref), minlength=len(levels)).astype(np.float64)
        cur_counts = np.bincount(np.searchsorted(levels, cur), minlength=len(levels)).astype(np.float64)
        statistic, p = chi_square_homogeneity(ref_counts, cur_counts)
        # Means, not medians: for a 0/1 score the mean is the rate, which is what moved.
        return FeatureDrift(name, "numeric", "chi_square", len(ref), len(cur), statistic, p,
                            psi(ref_counts, cur_counts), float(np.mean(ref)), float(np.mean(cur)), note="means")
    # With ties the KS null distribution is conservative (p-values too large), never anti-conservative.
    ks = stats.ks_2samp(ref, cur, alternative="two-sided", method="auto")
    ref_bins, cur_bins = quantile_bins(ref, cur, bins)
    return FeatureDrift(name, "numeric", "ks", len(ref), len(cur), float(ks.statistic), float(ks.pvalue),
                        psi(ref_bins, cur_bins), float(np.median(ref)), float(np.median(cur)))


def categorical_drift(name: str, reference: Sequence[str], current: Sequence[str],
                      focus: str | None = None) -> FeatureDrift:
    """Drift of a categorical feature (e.g. finish reason): chi-square homogeneity test plus PSI over
    categories. Summaries are the share of ``focus`` (or of the reference's most common category)."""
    cats = sorted(set(reference) | set(current))
    if not reference or not current:
        return FeatureDrift(name, "categorical", "none", len(reference), len(current), 0.0, 1.0, 0.0,
                            math.nan, math.nan, note="no data")
    index = {c: i for i, c in enumerate(cats)}
    ref_counts = np.bincount([index[c] for c in reference], minlength=len(cats)).astype(np.float64)
    cur_counts = np.bincount([index[c] for c in current], minlength=len(cats)).astype(np.float64)
    statistic, p = chi_square_homogeneity(ref_counts, cur_counts)
    top = focus if focus in index else cats[int(np.argmax(ref_counts))]
    i = index[top]
    return FeatureDrift(name, "categorical", "chi_square", len(reference), len(current), statistic, p,
                        psi(ref_counts, cur_counts), float(ref_counts[i] / len(reference)),
                        float(cur_counts[i] / len(current)), note=f"share of {top}")
