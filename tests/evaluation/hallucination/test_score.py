"""Tests for the hallucination scorer: precision, recall, F1 and the threshold calibration."""

from __future__ import annotations

import pytest

from evaluation.hallucination.score import THRESHOLDS, calibrate, prf


def test_prf_counts_against_the_labels() -> None:
    """Flagged hallucinations are true positives, flagged grounded answers false positives."""
    m = prf([1, 1, 0, 0, 1], [True, False, True, False, True])
    assert (m["tp"], m["fp"], m["fn"], m["n"]) == (2, 1, 1, 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)


def test_prf_without_flags_is_zero_not_an_error() -> None:
    """Nothing flagged gives precision, recall and F1 of 0."""
    assert prf([1, 0], [False, False])["f1"] == 0.0


def test_calibrate_takes_the_middle_of_the_best_plateau() -> None:
    """Every threshold between the hallucinated and the grounded scores is perfect; the middle one is chosen."""
    threshold, best = calibrate([1, 1, 0, 0], [0.02, 0.03, 0.97, 0.98])
    assert best == 1.0
    assert threshold == pytest.approx(sorted(THRESHOLDS)[len(THRESHOLDS) // 2])
