"""Tests for the DP statistics of a release that need no store (the release job's are in tests/retention)."""

from __future__ import annotations

import numpy as np

from processors.dp import Statistic, dp_statistic


def test_dp_count_is_unbiased_and_not_capped_at_the_true_count() -> None:
    """The released count's noise is symmetric around the true count (no truncation that reveals it)."""
    rng = np.random.RandomState(3)
    values = np.array([dp_statistic(np.ones(100), Statistic("count"), 0.5, rng)[0][1] for _ in range(3000)])
    assert abs(values.mean() - 100) < 0.5
    assert (values > 100).mean() > 0.3
