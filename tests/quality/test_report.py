"""Tests for quality.report rendering: self-contained HTML that escapes names, and drift text."""

from __future__ import annotations

import datetime as dt

import numpy as np

from quality.drift import DriftConfig, Features, detect_drift
from quality.jobs import RateRow
from quality.report import QualityReport, rate_chart, render_html, render_text, split_for_drift
from quality.windows import Window

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
EVIL = "<script>alert(1)</script>"


def report() -> QualityReport:
    rates = [RateRow("day", T0 + dt.timedelta(days=d), m, 100, 5 + d, (5 + d) / 100, 0.02, 0.12)
             for d in range(3) for m in ("model-a", EVIL)]
    rng = np.random.default_rng(1)
    f1 = Features(numeric={"input_tokens": rng.lognormal(5, 0.5, 300)}, rows=300)
    f2 = Features(numeric={"input_tokens": rng.lognormal(5.5, 0.5, 300)}, rows=300)
    drift = detect_drift(f1, f2, DriftConfig(features=["input_tokens"]), model=EVIL)
    return QualityReport(Window(T0, T0 + dt.timedelta(days=7)), "sovtel", rates, [], [drift])


def test_html_is_self_contained_and_escaped() -> None:
    """The page has inline charts and tables, no external resource, and escapes model names."""
    page = render_html(report())
    assert page.count("<svg") == 2 and "<table" in page
    assert EVIL not in page and "&lt;script&gt;" in page
    assert "src=" not in page and "<link" not in page


def test_text_mentions_drift_and_rates() -> None:
    """The text report lists totals and flags the drifted feature."""
    text = render_text(report())
    assert "model-a" in text and "DRIFT" in text and "input_tokens" in text


def test_rate_chart_without_data() -> None:
    """An empty series renders a note instead of an empty chart."""
    assert "No data" in rate_chart([])


def test_drift_split_of_a_report_window() -> None:
    """The report compares the window's last day with the rest, or halves when the window is short."""
    ref, cur = split_for_drift(Window(T0, T0 + dt.timedelta(days=7)), 86400)
    assert cur.start == T0 + dt.timedelta(days=6) and ref.end == cur.start
    ref, cur = split_for_drift(Window(T0, T0 + dt.timedelta(hours=10)), 86400)
    assert ref.end == cur.start == T0 + dt.timedelta(hours=5)
