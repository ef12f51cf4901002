"""Quality jobs over the store: hallucination-rate roll-ups, version comparisons and drift, saved for dashboards.

The drift job is ``run_drift_job``; the report job (``run_report_job``) lives in ``quality.report``.

Reads ``{db}.spans`` (the edge scores in ``quality_scores``) and writes ``{db}.quality_rates``,
``{db}.quality_comparisons`` and ``{db}.quality_drift`` (migration 0200_quality.sql).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry

from quality.drift import DriftConfig, DriftReport, detect_drift, features_from_spans
from quality.metrics import QualityMetrics
from quality.stats import ProportionTest, two_proportion_test, wilson_interval
from quality.windows import Window
from storage.backend import Store, StoreError

Period = Literal["hour", "day"]
PERIODS: tuple[Period, ...] = ("hour", "day")
HALLUCINATION = "hallucination"
RESULT_TABLES: tuple[str, ...] = ("quality_rates", "quality_comparisons", "quality_drift")
_BUCKET = {"hour": "toStartOfHour", "day": "toStartOfDay"}
_UTC_NS = "fromUnixTimestamp64Nano({%s:Int64}, 'UTC')"


class QualityJobError(Exception):
    """A quality job cannot run against this store (missing tables, unusable database name)."""


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _window_params(window: Window, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}start": _ns(window.start), f"{prefix}end": _ns(window.end)}


def _in_window(prefix: str = "") -> str:
    return f"timestamp >= {_UTC_NS % (prefix + 'start')} AND timestamp < {_UTC_NS % (prefix + 'end')}"


def check_database(store: Store, db: str, results: bool = True) -> None:
    """Raise QualityJobError unless ``db`` has spans (and, with ``results``, the quality result tables)."""
    if not db.replace("_", "").isalnum() or db[0].isdigit():
        raise QualityJobError(f"database name {db!r} must be a plain identifier")
    need = ["spans", *(RESULT_TABLES if results else ())]
    missing = [t for t in need if not int(store.command(f"EXISTS TABLE {db}.{t}"))]
    if missing:
        raise QualityJobError(
            f"database {db} lacks table(s) {', '.join(missing)}: run 'sovtel schema migrate' for this store first"
        )


@dataclass(frozen=True)
class RateRow:
    """Hallucination rate of one model version in one time bucket, with its Wilson interval."""

    period: Period
    bucket: dt.datetime
    model: str
    n: int
    events: int
    rate: float
    ci_low: float
    ci_high: float


def hallucination_rates(store: Store, db: str, window: Window, period: Period, *,
                        confidence: float = 0.95) -> list[RateRow]:
    """Rate of ``hallucination = 1`` among answers that got a decision, per model and bucket."""
    rows = store.query_rows(
        f"""
        SELECT {_BUCKET[period]}(timestamp) AS bucket, response_model, count() AS n,
               countIf(quality_scores['{HALLUCINATION}'] >= 0.5) AS x
        FROM {db}.spans
        WHERE {_in_window()} AND mapContains(quality_scores, '{HALLUCINATION}')
        GROUP BY bucket, response_model
        ORDER BY response_model, bucket
        """,
        _window_params(window),
    )
    if not rows:
        return []
    n = np.array([int(r[2]) for r in rows])
    x = np.array([int(r[3]) for r in rows])
    low, high = wilson_interval(x, n, confidence)
    out = []
    for (bucket, model, *_), ni, xi, lo, hi in zip(rows, n, x, low, high, strict=True):
        when = bucket if bucket.tzinfo else bucket.replace(tzinfo=dt.UTC)
        out.append(RateRow(period, when, str(model), int(ni), int(xi), float(xi / ni), float(lo), float(hi)))
    return out


@dataclass(frozen=True)
class Comparison:
    """Is the candidate version worse (more hallucinations) than the baseline version?"""

    request_model: str
    baseline: str
    candidate: str
    baseline_n: int
    baseline_events: int
    candidate_n: int
    candidate_events: int
    test: ProportionTest
    alpha: float

    @property
    def worse(self) -> bool:
        """Significantly higher rate at ``alpha`` (one-sided)."""
        return self.test.p_value < self.alpha and self.test.difference > 0


def version_pairs(store: Store, db: str, window: Window) -> list[tuple[str, str, str]]:
    """(request model, baseline, candidate) for every request model served by several versions in the
    window; the baseline is the version first seen in the store (ties by name), the others are candidates."""
    rows = store.query_rows(
        f"""
        SELECT request_model, response_model FROM {db}.spans
        WHERE {_in_window()} AND mapContains(quality_scores, '{HALLUCINATION}') AND response_model != ''
        GROUP BY request_model, response_model
        """,
        _window_params(window),
    )
    by_request: dict[str, list[str]] = {}
    for request, response in rows:
        by_request.setdefault(str(request), []).append(str(response))
    multi = {k: v for k, v in by_request.items() if len(v) > 1}
    if not multi:
        return []
    first = dict(((str(r), str(m)), t) for r, m, t in store.query_rows(
        f"""
        SELECT request_model, response_model, min(timestamp) FROM {db}.spans
        WHERE request_model IN {{requests:Array(String)}} AND response_model != ''
        GROUP BY request_model, response_model
        """,
        {"requests": sorted(multi)},
    ))
    pairs: list[tuple[str, str, str]] = []
    for request, versions in sorted(multi.items()):
        ordered = sorted(versions, key=lambda m: (first.get((request, m)), m))
        pairs.extend((request, ordered[0], candidate) for candidate in ordered[1:])
    return pairs


def compare_versions(store: Store, db: str, window: Window, *, alpha: float = 0.01,
                     pairs: Sequence[tuple[str, str, str]] | None = None) -> list[Comparison]:
    """One-sided two-proportion tests of hallucination rates between versions over the window."""
    pairs = version_pairs(store, db, window) if pairs is None else list(pairs)
    if not pairs:
        return []
    counts = {
        str(m): (int(n), int(x))
        for m, n, x in store.query_rows(
            f"""
            SELECT response_model, count(), countIf(quality_scores['{HALLUCINATION}'] >= 0.5) FROM {db}.spans
            WHERE {_in_window()} AND mapContains(quality_scores, '{HALLUCINATION}')
            GROUP BY response_model
            """,
            _window_params(window),
        )
    }
    out = []
    for request, baseline, candidate in pairs:
        bn, bx = counts.get(baseline, (0, 0))
        cn, cx = counts.get(candidate, (0, 0))
        if bn == 0 or cn == 0:
            continue
        out.append(Comparison(request, baseline, candidate, bn, bx, cn, cx,
                              two_proportion_test(bx, bn, cx, cn, "greater"), alpha))
    return out


def models_in(store: Store, db: str, window: Window) -> list[str]:
    """Response models with spans in the window."""
    rows = store.query_rows(
        f"SELECT DISTINCT response_model FROM {db}.spans WHERE {_in_window()} AND response_model != '' ORDER BY 1",
        _window_params(window),
    )
    return [str(r[0]) for r in rows]


def feature_table(store: Store, db: str, model: str, window: Window) -> pa.Table:
    """The per-request drift features of one model version in one window, as an Arrow table."""
    params = {**_window_params(window), "model": model}
    return store.query_arrow(
        f"""
        SELECT input_tokens, output_tokens, duration_ns, ttft_s, finish_reasons, quality_scores,
               (has(finish_reasons, 'tool_calls') OR trace_id IN (
                   SELECT trace_id FROM {db}.spans
                   WHERE operation = 'execute_tool'
                     AND timestamp >= {_UTC_NS % 'start'} - INTERVAL 1 HOUR
                     AND timestamp < {_UTC_NS % 'end'} + INTERVAL 1 HOUR)) AS tool_call
        FROM {db}.spans
        WHERE response_model = {{model:String}} AND {_in_window()}
        """,
        params,
    )


def run_drift(store: Store, db: str, model: str, reference: Window, current: Window, *,
              cfg: DriftConfig | None = None) -> DriftReport:
    """Drift of one model version between two windows of the store."""
    ref = features_from_spans(feature_table(store, db, model, reference))
    cur = features_from_spans(feature_table(store, db, model, current))
    return detect_drift(ref, cur, cfg, model=model, reference_label=str(reference), current_label=str(current))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def save_rates(store: Store, db: str, rows: Sequence[RateRow], confidence: float = 0.95) -> None:
    """Write rate rows (a re-run replaces the same buckets: ReplacingMergeTree by computed_at)."""
    if not rows:
        return
    now = _now()
    store.insert_arrow(f"{db}.quality_rates", pa.table({
        "computed_at": pa.array([now] * len(rows), type=pa.timestamp("ms", tz="UTC")),
        "period": [r.period for r in rows],
        "bucket": pa.array([r.bucket for r in rows], type=pa.timestamp("s", tz="UTC")),
        "response_model": [r.model for r in rows],
        "metric": [HALLUCINATION] * len(rows),
        "n": pa.array([r.n for r in rows], type=pa.uint64()),
        "events": pa.array([r.events for r in rows], type=pa.uint64()),
        "rate": [r.rate for r in rows],
        "ci_low": [r.ci_low for r in rows],
        "ci_high": [r.ci_high for r in rows],
        "confidence": [confidence] * len(rows),
    }))


def save_comparisons(store: Store, db: str, window: Window, rows: Sequence[Comparison]) -> None:
    """Append version comparisons."""
    if not rows:
        return
    now = _now()
    ms = pa.timestamp("ms", tz="UTC")
    store.insert_arrow(f"{db}.quality_comparisons", pa.table({
        "computed_at": pa.array([now] * len(rows), type=ms),
        "window_start": pa.array([window.start] * len(rows), type=ms),
        "window_end": pa.array([window.end] * len(rows), type=ms),
        "metric": [HALLUCINATION] * len(rows),
        "request_model": [c.request_model for c in rows],
        "baseline_model": [c.baseline for c in rows],
        "candidate_model": [c.candidate for c in rows],
        "baseline_n": pa.array([c.baseline_n for c in rows], type=pa.uint64()),
        "baseline_events": pa.array([c.baseline_events for c in rows], type=pa.uint64()),
        "candidate_n": pa.array([c.candidate_n for c in rows], type=pa.uint64()),
        "candidate_events": pa.array([c.candidate_events for c in rows], type=pa.uint64()),
        "baseline_rate": [c.test.baseline_rate for c in rows],
        "candidate_rate": [c.test.candidate_rate for c in rows],
        "difference": [c.test.difference for c in rows],
        "statistic": [c.test.statistic if math.isfinite(c.test.statistic) else 0.0 for c in rows],
        "p_value": [c.test.p_value for c in rows],
        "method": [c.test.method for c in rows],
        "alpha": [c.alpha for c in rows],
        "worse": [c.worse for c in rows],
    }))


def save_drift(store: Store, db: str, reference: Window, current: Window, reports: Sequence[DriftReport]) -> None:
    """Append one row per tested feature of each report (a report with no feature writes nothing)."""
    rows = [(r, f) for r in reports for f in r.features]
    if not rows:
        return
    now = _now()
    ms = pa.timestamp("ms", tz="UTC")
    n = len(rows)
    store.insert_arrow(f"{db}.quality_drift", pa.table({
        "computed_at": pa.array([now] * n, type=ms),
        "response_model": [r.model for r, _ in rows],
        "feature": [f.feature for _, f in rows],
        "kind": [f.kind for _, f in rows],
        "test": [f.test for _, f in rows],
        "reference_start": pa.array([reference.start] * n, type=ms),
        "reference_end": pa.array([reference.end] * n, type=ms),
        "current_start": pa.array([current.start] * n, type=ms),
        "current_end": pa.array([current.end] * n, type=ms),
        "n_reference": pa.array([f.n_reference for _, f in rows], type=pa.uint64()),
        "n_current": pa.array([f.n_current for _, f in rows], type=pa.uint64()),
        "statistic": [f.statistic for _, f in rows],
        "p_value": [f.p_value for _, f in rows],
        "p_adjusted": [f.p_adjusted for _, f in rows],
        "psi": [f.psi for _, f in rows],
        "reference_summary": [f.reference_summary for _, f in rows],
        "current_summary": [f.current_summary for _, f in rows],
        "alpha": [r.config.alpha for r, _ in rows],
        "psi_threshold": [r.config.psi_threshold for r, _ in rows],
        "drift": [f.drift for _, f in rows],
        "note": [f.note for _, f in rows],
    }))


def write_metrics(path: Path, fill: Callable[[QualityMetrics], None]) -> None:
    """Fill fresh gauges and write them in node_exporter's textfile format; QualityJobError if that fails."""
    metrics = QualityMetrics(CollectorRegistry())
    fill(metrics)
    try:
        metrics.write(path)
    except OSError as exc:
        raise QualityJobError(f"cannot write metrics to {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class DriftOptions:
    """What the drift job tests: model versions, a reference and a current window, and where results go."""

    models: Sequence[str]
    reference: Window
    current: Window
    database: str = "sovtel"
    config: DriftConfig = field(default_factory=DriftConfig)
    # Write the results to quality_drift for the dashboards.
    save: bool = True
    metrics_file: Path | None = None


@dataclass(frozen=True)
class DriftJobResult:
    """The drift job's reports, one per model version, in the order asked."""

    reports: list[DriftReport]

    @property
    def drift(self) -> bool:
        """Whether any model drifted."""
        return any(r.drift for r in self.reports)

    def as_dicts(self) -> list[dict[str, Any]]:
        """A JSON-friendly form: one mapping per model."""
        return [r.as_dict() for r in self.reports]


def run_drift_job(store: Store, options: DriftOptions) -> DriftJobResult:
    """Test each model for drift between the two windows; save the results and write gauges if asked.

    Raises QualityJobError when the database cannot serve the job or a file cannot be written;
    store failures propagate as StoreError.
    """
    check_database(store, options.database, results=options.save)
    reports = [run_drift(store, options.database, m, options.reference, options.current, cfg=options.config)
               for m in options.models]
    if options.save:
        save_drift(store, options.database, options.reference, options.current, reports)
    if options.metrics_file is not None:

        def fill(metrics: QualityMetrics) -> None:
            metrics.publish_drift(reports)
            metrics.job_done("drift")

        write_metrics(options.metrics_file, fill)
    return DriftJobResult(reports)


__all__ = [
    "PERIODS",
    "Comparison",
    "DriftJobResult",
    "DriftOptions",
    "QualityJobError",
    "RateRow",
    "StoreError",
    "check_database",
    "compare_versions",
    "feature_table",
    "hallucination_rates",
    "models_in",
    "run_drift",
    "run_drift_job",
    "save_comparisons",
    "save_drift",
    "save_rates",
    "version_pairs",
    "write_metrics",
]
