"""Tests for quality.jobs on the embedded store: roll-ups with intervals, version tests, drift, saved results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from quality import jobs
from quality.drift import DriftConfig
from quality.metrics import QualityMetrics
from quality.report import ReportOptions, build_report, publish, render_html, render_text, run_report_job, save_report
from quality.windows import Window
from storage.backend import Store
from tests.quality.conftest import DAY, V1, V2, scored_traffic

WHOLE_DAY = Window(DAY - dt.timedelta(hours=1), DAY + dt.timedelta(days=1))


@pytest.fixture
def filled(store: Store, unique_db: str) -> Store:
    """One day of traffic where v2 hallucinates three times as often as v1 (5% vs 15%)."""
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(3, 3000, {V1: 0.05, V2: 0.15}))
    return store


def test_rates_per_hour_and_day_with_wilson_intervals(filled: Store, unique_db: str) -> None:
    """Daily rates match the counts in the store and their intervals contain the rate."""
    rows = jobs.hallucination_rates(filled, unique_db, WHOLE_DAY, "day")
    counts = dict(((str(m), (int(n), int(x))) for m, n, x in filled.query_rows(
        f"SELECT response_model, count(), countIf(quality_scores['hallucination'] = 1) FROM {unique_db}.spans "
        "WHERE mapContains(quality_scores, 'hallucination') GROUP BY response_model")))
    assert {r.model for r in rows} == set(counts)
    for model, (n, x) in counts.items():
        assert sum(r.n for r in rows if r.model == model) == n
        assert sum(r.events for r in rows if r.model == model) == x
    assert all(r.ci_low <= r.rate <= r.ci_high for r in rows)
    hours = jobs.hallucination_rates(filled, unique_db, WHOLE_DAY, "hour")
    assert sum(r.n for r in hours) == sum(r.n for r in rows)
    assert all(r.bucket.minute == 0 and r.bucket.tzinfo is not None for r in hours)


def test_v2_is_worse_than_v1(filled: Store, unique_db: str) -> None:
    """The newer version (first seen later) is the candidate, and its higher rate is significant."""
    assert jobs.version_pairs(filled, unique_db, WHOLE_DAY) == [("llama-3.1-8b-instruct", V1, V2)]
    (cmp,) = jobs.compare_versions(filled, unique_db, WHOLE_DAY, alpha=0.01)
    assert cmp.worse and cmp.test.p_value < 1e-6 and cmp.test.candidate_rate > cmp.test.baseline_rate


def test_equal_versions_are_not_worse(store: Store, unique_db: str) -> None:
    """With equal rates the comparison does not call the candidate worse."""
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(4, 3000, {V1: 0.08, V2: 0.08}))
    (cmp,) = jobs.compare_versions(store, unique_db, WHOLE_DAY)
    assert not cmp.worse


def test_empty_window(filled: Store, unique_db: str) -> None:
    """A window without data yields no rows rather than errors."""
    later = Window(DAY + dt.timedelta(days=5), DAY + dt.timedelta(days=6))
    assert jobs.hallucination_rates(filled, unique_db, later, "hour") == []
    assert jobs.compare_versions(filled, unique_db, later) == []
    assert jobs.models_in(filled, unique_db, later) == []


def test_drift_from_the_store(store: Store, unique_db: str) -> None:
    """Longer v2 prompts in the second half of the day are detected from stored spans; v1 is stable."""
    half = 1500 * 20_000_000_000
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(5, 1500, {}))
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(6, 1500, {}, start_ns=jobs._ns(DAY) + half,
                                                          prompt_scale={V2: 1.6}))
    mid = DAY + dt.timedelta(seconds=half / 1e9)
    ref, cur = Window(DAY, mid), Window(mid, DAY + dt.timedelta(days=1))
    cfg = DriftConfig(min_samples=50)
    shifted = jobs.run_drift(store, unique_db, V2, ref, cur, cfg=cfg)
    stable = jobs.run_drift(store, unique_db, V1, ref, cur, cfg=cfg)
    assert shifted.drift and not stable.drift
    assert {f.feature for f in stable.features} >= {"input_tokens", "tool_call", "score:hallucination"}
    assert any(f.feature == "tool_call" and f.reference_summary > 0 for f in stable.features)


def test_report_saved_published_and_rendered(filled: Store, unique_db: str) -> None:
    """A report writes every result table, sets the gauges and renders text and HTML."""
    report = build_report(filled, unique_db, WHOLE_DAY, alpha=0.01, drift=DriftConfig(min_samples=50),
                          drift_current_seconds=12 * 3600)
    save_report(filled, report)
    for table in jobs.RESULT_TABLES:
        assert filled.query_rows(f"SELECT count() FROM {unique_db}.{table}")[0][0] > 0
    registry = CollectorRegistry()
    publish(report, QualityMetrics(registry))
    assert registry.get_sample_value("sovtel_quality_version_worse", {
        "request_model": "llama-3.1-8b-instruct", "baseline": V1, "candidate": V2}) == 1.0
    assert registry.get_sample_value("sovtel_quality_hallucination_samples", {"model": V1, "period": "day"}) > 0
    assert "WORSE" in render_text(report)
    assert "<svg" in render_html(report)


def test_exploded_scores_table(filled: Store, unique_db: str) -> None:
    """The materialized view writes one quality_scores row per span and score name."""
    n_spans = filled.query_rows(f"SELECT count() FROM {unique_db}.spans WHERE length(quality_scores) > 0")[0][0]
    rows = dict(filled.query_rows(f"SELECT name, count() FROM {unique_db}.quality_scores GROUP BY name"))
    assert rows == {"groundedness": n_spans, "hallucination": n_spans}


def test_missing_tables_are_reported(store: Store, unique_db: str) -> None:
    """A database without the quality tables (or at all) gives a QualityJobError naming the fix."""
    with pytest.raises(jobs.QualityJobError, match="schema migrate"):
        jobs.check_database(store, f"{unique_db}_absent")
    with pytest.raises(jobs.QualityJobError, match="identifier"):
        jobs.check_database(store, "bad-name; DROP")


class TestDriftJob:
    def test_saves_results_and_writes_gauges(self, filled: Store, unique_db: str, tmp_path: Path) -> None:
        """The job returns one report per model in the order asked, saves them and writes the gauges."""
        half = DAY + dt.timedelta(hours=12)
        metrics = tmp_path / "drift.prom"
        options = jobs.DriftOptions(models=[V2, V1], reference=Window(DAY, half),
                                    current=Window(half, DAY + dt.timedelta(days=1)), database=unique_db,
                                    config=DriftConfig(min_samples=50), metrics_file=metrics)
        result = jobs.run_drift_job(filled, options)
        assert [r.model for r in result.reports] == [V2, V1]
        assert result.drift == any(r.drift for r in result.reports)
        assert [d["model"] for d in result.as_dicts()] == [V2, V1]
        assert filled.query_rows(f"SELECT uniqExact(response_model) FROM {unique_db}.quality_drift")[0][0] == 2
        assert 'sovtel_quality_job_last_success_timestamp_seconds{job="drift"}' in metrics.read_text()

    def test_without_save_writes_nothing(self, filled: Store, unique_db: str) -> None:
        """With save off the job leaves quality_drift empty."""
        options = jobs.DriftOptions(models=[V1], reference=Window(DAY, DAY + dt.timedelta(hours=12)),
                                    current=Window(DAY + dt.timedelta(hours=12), DAY + dt.timedelta(days=1)),
                                    database=unique_db, save=False)
        jobs.run_drift_job(filled, options)
        assert filled.query_rows(f"SELECT count() FROM {unique_db}.quality_drift")[0][0] == 0

    def test_unwritable_metrics_file_is_a_job_error(self, filled: Store, unique_db: str, tmp_path: Path) -> None:
        """A metrics file that cannot be written fails the job with a message naming the file."""
        options = jobs.DriftOptions(models=[V1], reference=Window(DAY, DAY + dt.timedelta(hours=12)),
                                    current=Window(DAY + dt.timedelta(hours=12), DAY + dt.timedelta(days=1)),
                                    database=unique_db, metrics_file=tmp_path / "absent" / "drift.prom")
        with pytest.raises(jobs.QualityJobError, match="cannot write metrics"):
            jobs.run_drift_job(filled, options)


class TestReportJob:
    def test_saves_and_writes_page_and_gauges(self, filled: Store, unique_db: str, tmp_path: Path) -> None:
        """The job saves every result table and writes the HTML page and the gauges it was asked for."""
        page, metrics = tmp_path / "quality.html", tmp_path / "quality.prom"
        report = run_report_job(filled, ReportOptions(window=WHOLE_DAY, database=unique_db,
                                                      drift=DriftConfig(min_samples=50),
                                                      drift_current_seconds=12 * 3600, html_path=page,
                                                      metrics_file=metrics))
        assert report.comparisons and report.drift
        for table in jobs.RESULT_TABLES:
            assert filled.query_rows(f"SELECT count() FROM {unique_db}.{table}")[0][0] > 0
        assert "<svg" in page.read_text(encoding="utf-8")
        assert 'job="report"' in metrics.read_text()

    def test_without_save_or_drift(self, filled: Store, unique_db: str) -> None:
        """With save and drift off the job only reads: rates and comparisons, no stored rows."""
        report = run_report_job(filled, ReportOptions(window=WHOLE_DAY, database=unique_db, save=False,
                                                      drift_current_seconds=None))
        assert report.rates and not report.drift
        assert filled.query_rows(f"SELECT count() FROM {unique_db}.quality_rates")[0][0] == 0

    def test_unwritable_page_is_a_job_error(self, filled: Store, unique_db: str, tmp_path: Path) -> None:
        """An HTML path that cannot be written fails the job with a message naming the path."""
        options = ReportOptions(window=WHOLE_DAY, database=unique_db, save=False, drift_current_seconds=None,
                                html_path=tmp_path / "absent" / "quality.html")
        with pytest.raises(jobs.QualityJobError, match="cannot write"):
            run_report_job(filled, options)

    def test_missing_tables_fail_before_reading(self, store: Store, unique_db: str) -> None:
        """A database without the tables is a QualityJobError naming the fix."""
        with pytest.raises(jobs.QualityJobError, match="schema migrate"):
            run_report_job(store, ReportOptions(window=WHOLE_DAY, database=f"{unique_db}_absent"))
