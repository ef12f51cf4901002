"""Scoring a hallucination detector on the evaluation set: precision, recall and F1 against the labels,
and the threshold calibration a groundedness score is flagged by."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

# The thresholds calibration tries: a score below the threshold flags the answer as hallucinated.
THRESHOLDS: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def prf(labels: Sequence[int], flagged: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of ``flagged`` against ``labels`` (1 = hallucinated)."""
    tp = sum(1 for y, f in zip(labels, flagged, strict=True) if y == 1 and f)
    fp = sum(1 for y, f in zip(labels, flagged, strict=True) if y == 0 and f)
    fn = sum(1 for y, f in zip(labels, flagged, strict=True) if y == 1 and not f)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "n": len(labels)}


def calibrate(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """The threshold with the best F1 on a split (middle of the best plateau) and that F1."""
    f1s = [prf(labels, [s < t for s in scores])["f1"] for t in THRESHOLDS]
    best = max(f1s)
    plateau = [t for t, f in zip(THRESHOLDS, f1s, strict=True) if f >= best - 1e-12]
    return float(statistics.median(plateau)), best
