"""The quality report job (``run_report_job``): hallucination rates, version comparisons and drift, as
text, JSON or one HTML page.

The HTML page is self-contained (inline CSS and SVG charts, no scripts, no CDN), so it can be
attached to a ticket or opened offline.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quality.drift import DriftConfig, DriftReport
from quality.jobs import (
    PERIODS,
    Comparison,
    QualityJobError,
    RateRow,
    check_database,
    compare_versions,
    hallucination_rates,
    models_in,
    run_drift,
    save_comparisons,
    save_drift,
    save_rates,
    write_metrics,
)
from quality.metrics import QualityMetrics
from quality.stats import wilson_interval
from quality.windows import Window, parse_window
from storage.backend import Store


@dataclass
class QualityReport:
    """Everything ``sovtel quality report`` found for one window."""

    window: Window
    database: str
    rates: list[RateRow]
    comparisons: list[Comparison]
    drift: list[DriftReport] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def totals(self) -> list[dict[str, Any]]:
        """Per model over the whole window (from the daily buckets): checked answers, hallucinations, rate."""
        acc: dict[str, list[int]] = {}
        for r in self.rates:
            if r.period == "day":
                a = acc.setdefault(r.model, [0, 0])
                a[0] += r.n
                a[1] += r.events
        out = []
        for model, (n, x) in sorted(acc.items()):
            lo, hi = wilson_interval([x], [n])
            out.append({"model": model, "checked": n, "hallucinations": x, "rate": x / n if n else None,
                        "ci_low": float(lo[0]), "ci_high": float(hi[0])})
        return out

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "window": str(self.window),
            "database": self.database,
            "totals": self.totals(),
            "rates": [{"period": r.period, "bucket": r.bucket.isoformat(), "model": r.model, "n": r.n,
                       "hallucinations": r.events, "rate": r.rate, "ci_low": r.ci_low, "ci_high": r.ci_high}
                      for r in self.rates],
            "comparisons": [{"request_model": c.request_model, "baseline": c.baseline, "candidate": c.candidate,
                             "baseline_n": c.baseline_n, "baseline_hallucinations": c.baseline_events,
                             "candidate_n": c.candidate_n, "candidate_hallucinations": c.candidate_events,
                             "baseline_rate": c.test.baseline_rate, "candidate_rate": c.test.candidate_rate,
                             "difference": c.test.difference, "p_value": c.test.p_value, "method": c.test.method,
                             "alpha": c.alpha, "worse": c.worse} for c in self.comparisons],
            "drift": [d.as_dict() for d in self.drift],
        }


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _p(v: float) -> str:
    return "-" if not math.isfinite(v) else (f"{v:.2e}" if v < 1e-3 else f"{v:.3f}")


def render_text(report: QualityReport) -> str:
    """A plain-text summary for a terminal or a CronJob log."""
    lines = [f"sovtel quality report — window {report.window} (database {report.database})", ""]
    totals = report.totals()
    if not totals:
        lines.append("No answers with a hallucination decision in this window (is the quality processor configured?).")
    else:
        lines.append(f"{'model':40} {'checked':>8} {'halluc.':>8} {'rate':>7}  95% CI")
        for t in totals:
            lines.append(f"{t['model']:40} {t['checked']:>8} {t['hallucinations']:>8} {_pct(t['rate']):>7}  "
                         f"{_pct(t['ci_low'])} to {_pct(t['ci_high'])}")
    if report.comparisons:
        lines += ["", "Version comparisons (one-sided: is the candidate worse?)"]
        for c in report.comparisons:
            verdict = "WORSE" if c.worse else "not significantly worse"
            lines.append(f"  {c.candidate} vs {c.baseline}: {_pct(c.test.candidate_rate)} vs "
                         f"{_pct(c.test.baseline_rate)}, p = {_p(c.test.p_value)} ({c.test.method})"
                         f" → {verdict} at alpha {c.alpha}")
    if report.drift:
        lines += ["", render_drift_text(report.drift).rstrip("\n")]
    return "\n".join(lines) + "\n"


def render_drift_text(reports: Sequence[DriftReport]) -> str:
    """Drift results as plain text: one block per model, one line per feature."""
    lines: list[str] = []
    for d in reports:
        if lines:
            lines.append("")
        lines.append(f"Drift {d.model}: {d.status.upper()} (reference {d.reference}, current {d.current})")
        for f in d.features:
            flag = "DRIFT" if f.drift else ""
            lines.append(f"  {f.feature:28} {f.test:10} p_adj={_p(f.p_adjusted):>9} PSI={f.psi:6.3f} "
                         f"{f.reference_summary:10.4g} → {f.current_summary:<10.4g} {flag}")
        for name, why in d.skipped.items():
            lines.append(f"  {name:28} skipped: {why}")
    return "\n".join(lines) + "\n"


# -- HTML ---------------------------------------------------------------------------------------

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.bad{color:#b00020;font-weight:600}
.ok{color:#1b5e20}.muted{color:#777;font-size:.9rem}svg{background:#fff;border:1px solid #eee}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def rate_chart(rows: Sequence[RateRow], width: int = 900, height: int = 260) -> str:
    """An inline SVG line chart of rate per bucket and model, with the Wilson interval as a band."""
    if not rows:
        return "<p class='muted'>No data.</p>"
    left, right, top, bottom = 50, 180, 15, 30
    t0 = min(r.bucket for r in rows).timestamp()
    t1 = max(r.bucket for r in rows).timestamp()
    span = max(t1 - t0, 1.0)
    ymax = max(0.05, *(r.ci_high for r in rows if math.isfinite(r.ci_high)))
    ymax = math.ceil(ymax * 20) / 20

    def x(t: float) -> float:
        return left + (t - t0) / span * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / ymax) * (height - top - bottom)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             "aria-label='hallucination rate over time'>"]
    for i in range(5):
        v = ymax * i / 4
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>{100 * v:.0f}%</text>")
    for label_t in (t0, t1):
        stamp = dt.datetime.fromtimestamp(label_t, dt.UTC).strftime("%Y-%m-%d %H:%M")
        parts.append(f"<text x='{x(label_t):.1f}' y='{height - 8}' font-size='11' text-anchor='middle'>{stamp}</text>")
    models = sorted({r.model for r in rows})
    for i, model in enumerate(models):
        color = _PALETTE[i % len(_PALETTE)]
        series = sorted((r for r in rows if r.model == model), key=lambda r: r.bucket)
        pts = [(x(r.bucket.timestamp()), y(r.rate), y(r.ci_low), y(r.ci_high)) for r in series]
        if len(pts) > 1:
            band = " ".join(f"{px:.1f},{hi:.1f}" for px, _, _, hi in pts) + " " + " ".join(
                f"{px:.1f},{lo:.1f}" for px, _, lo, _ in reversed(pts))
            parts.append(f"<polygon points='{band}' fill='{color}' fill-opacity='0.12' stroke='none'/>")
            line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
            parts.append(f"<polyline points='{line}' fill='none' stroke='{color}' stroke-width='2'/>")
        for px, py, lo, hi in pts:
            parts.append(f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{lo:.1f}' y2='{hi:.1f}' stroke='{color}' "
                         f"stroke-opacity='0.5'/><circle cx='{px:.1f}' cy='{py:.1f}' r='3' fill='{color}'/>")
        ly = top + 14 + 16 * i
        parts.append(f"<rect x='{width - right + 12}' y='{ly - 9}' width='10' height='10' fill='{color}'/>"
                     f"<text x='{width - right + 28}' y='{ly}' font-size='11'>{_e(model[:26])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def psi_chart(report: DriftReport, width: int = 900) -> str:
    """An inline SVG bar chart of PSI per feature, with the configured threshold as a line."""
    feats = report.features
    if not feats:
        return "<p class='muted'>No feature had enough data.</p>"
    row_h, left, right = 22, 190, 60
    height = 20 + row_h * len(feats)
    vmax = max(report.config.psi_threshold * 1.5, *(f.psi for f in feats)) or 1.0

    def x(v: float) -> float:
        return left + v / vmax * (width - left - right)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='PSI per feature for {_e(report.model)}'>"]
    for i, f in enumerate(feats):
        yy = 10 + i * row_h
        color = "#d62728" if f.drift else "#1f77b4"
        parts.append(f"<text x='{left - 8}' y='{yy + 14}' font-size='12' text-anchor='end'>{_e(f.feature)}</text>"
                     f"<rect x='{left}' y='{yy + 3}' width='{max(0.0, x(f.psi) - left):.1f}' height='{row_h - 8}' "
                     f"fill='{color}'/><text x='{x(f.psi) + 4:.1f}' y='{yy + 14}' font-size='11'>{f.psi:.3f}</text>")
    tx = x(report.config.psi_threshold)
    parts.append(f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='4' y2='{height - 4}' stroke='#555' stroke-dasharray='4 3'/>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: QualityReport) -> str:
    """The whole report as one self-contained HTML page."""
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>sovtel quality report</title>"
           f"<style>{_CSS}</style></head><body>",
           "<h1>sovtel quality report</h1>",
           f"<p class='muted'>Window {_e(report.window)} · database {_e(report.database)} · generated "
           f"{_e(report.generated_at.isoformat(timespec='seconds'))}</p>",
           "<h2>Hallucination rate per model version</h2>"]
    totals = report.totals()
    if totals:
        out.append("<table><tr><th>model</th><th>checked answers</th><th>hallucinations</th><th>rate</th>"
                   "<th>95% Wilson interval</th></tr>")
        for t in totals:
            out.append(f"<tr><td>{_e(t['model'])}</td><td>{t['checked']}</td><td>{t['hallucinations']}</td>"
                       f"<td>{_pct(t['rate'])}</td><td>{_pct(t['ci_low'])} to {_pct(t['ci_high'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No answers with a hallucination decision in this window.</p>")
    days = [r for r in report.rates if r.period == "day"]
    hours = [r for r in report.rates if r.period == "hour"]
    series, label = (hours, "hour") if report.window.seconds <= 3 * 86400 else (days, "day")
    out.append(f"<p class='muted'>Per {label}; dots are rates, bands and whiskers the 95% Wilson intervals.</p>")
    out.append(rate_chart(series))
    out.append("<h2>Version comparisons</h2>")
    if report.comparisons:
        out.append("<table><tr><th>request model</th><th>baseline</th><th>candidate</th><th>baseline rate</th>"
                   "<th>candidate rate</th><th>p (one-sided)</th><th>test</th><th>verdict</th></tr>")
        for c in report.comparisons:
            verdict = "<span class='bad'>worse</span>" if c.worse else "<span class='ok'>not significantly worse</span>"
            out.append(f"<tr><td>{_e(c.request_model)}</td><td>{_e(c.baseline)}</td><td>{_e(c.candidate)}</td>"
                       f"<td>{_pct(c.test.baseline_rate)} ({c.baseline_events}/{c.baseline_n})</td>"
                       f"<td>{_pct(c.test.candidate_rate)} ({c.candidate_events}/{c.candidate_n})</td>"
                       f"<td>{_p(c.test.p_value)}</td><td>{_e(c.test.method)}</td><td>{verdict}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No request model was served by two versions with checked answers.</p>")
    if report.drift:
        out.append("<h2>Drift</h2>")
    for d in report.drift:
        status = "<span class='bad'>drift</span>" if d.drift else _e(d.status.replace("_", " "))
        out.append(f"<h3>{_e(d.model)}: {status}</h3><p class='muted'>reference {_e(d.reference)} · current "
                   f"{_e(d.current)} · alpha {d.config.alpha} (Holm) · PSI threshold {d.config.psi_threshold}</p>")
        out.append(psi_chart(d))
        if d.features:
            out.append("<table><tr><th>feature</th><th>test</th><th>n ref / cur</th><th>statistic</th>"
                       "<th>p adjusted</th><th>PSI</th><th>reference</th><th>current</th><th></th></tr>")
            for f in d.features:
                flag = "<span class='bad'>drift</span>" if f.drift else ""
                out.append(f"<tr><td>{_e(f.feature)}</td><td>{_e(f.test)}</td><td>{f.n_reference} / {f.n_current}</td>"
                           f"<td>{f.statistic:.4g}</td><td>{_p(f.p_adjusted)}</td><td>{f.psi:.3f}</td>"
                           f"<td>{f.reference_summary:.4g}</td><td>{f.current_summary:.4g}</td><td>{flag}</td></tr>")
            out.append("</table>")
        if d.skipped:
            out.append("<p class='muted'>Skipped: " + "; ".join(f"{_e(k)} ({_e(v)})" for k, v in d.skipped.items())
                       + "</p>")
    out.append("</body></html>")
    return "\n".join(out)


def split_for_drift(window: Window, current_seconds: float) -> tuple[Window, Window]:
    """(reference, current): the window's last ``current_seconds`` against what precedes it, or the two
    halves when the window is not longer than twice that."""
    if window.seconds <= 2 * current_seconds:
        middle = window.start + (window.end - window.start) / 2
        return Window(window.start, middle), Window(middle, window.end)
    cut = window.end - dt.timedelta(seconds=current_seconds)
    return Window(window.start, cut), Window(cut, window.end)


def build_report(store: Store, db: str, window: Window, *, alpha: float = 0.01, drift: DriftConfig | None = None,
                 drift_current_seconds: float | None = 86400.0) -> QualityReport:
    """Run the roll-ups, the version comparisons and (unless ``drift_current_seconds`` is None) drift per model."""
    rates = [row for period in PERIODS for row in hallucination_rates(store, db, window, period)]
    comparisons = compare_versions(store, db, window, alpha=alpha)
    reports: list[DriftReport] = []
    if drift_current_seconds is not None:
        reference, current = split_for_drift(window, drift_current_seconds)
        cfg = drift or DriftConfig(alpha=alpha)
        reports = [run_drift(store, db, model, reference, current, cfg=cfg) for model in models_in(store, db, window)]
    return QualityReport(window, db, rates, comparisons, reports)


def save_report(store: Store, report: QualityReport) -> None:
    """Write the report's rows to the result tables the ML dashboard reads."""
    save_rates(store, report.database, report.rates)
    save_comparisons(store, report.database, report.window, report.comparisons)
    if report.drift:
        reference, current = _drift_windows(report)
        save_drift(store, report.database, reference, current, report.drift)


def _drift_windows(report: QualityReport) -> tuple[Window, Window]:
    first = report.drift[0]
    return parse_window(first.reference), parse_window(first.current)


def publish(report: QualityReport, metrics: QualityMetrics) -> None:
    """Set the Prometheus gauges from a report: latest bucket per model and period, comparisons, drift."""
    latest: dict[tuple[str, str], RateRow] = {}
    for r in report.rates:
        key = (r.model, r.period)
        if key not in latest or r.bucket > latest[key].bucket:
            latest[key] = r
    for (model, period), r in latest.items():
        metrics.publish_rate(model, period, n=r.n, events=r.events, low=r.ci_low, high=r.ci_high)
    for c in report.comparisons:
        metrics.publish_comparison(c.request_model, c.baseline, c.candidate, c.test.p_value, c.worse)
    metrics.publish_drift(report.drift)
    metrics.job_done("report")


@dataclass(frozen=True)
class ReportOptions:
    """What the report job covers and where its results go."""

    window: Window
    database: str = "sovtel"
    # Significance level of the version comparisons (and of drift when ``drift`` is not given).
    alpha: float = 0.01
    drift: DriftConfig | None = None
    # Drift compares the window's last part of this length with the rest; None skips drift.
    drift_current_seconds: float | None = 86400.0
    # Write the results to the quality_* tables the dashboards read.
    save: bool = True
    html_path: Path | None = None
    metrics_file: Path | None = None


def run_report_job(store: Store, options: ReportOptions) -> QualityReport:
    """Build the report for the window; save it, write its HTML page and gauges where asked.

    Raises QualityJobError when the database cannot serve the job or a file cannot be written;
    store failures propagate as StoreError.
    """
    check_database(store, options.database, results=options.save)
    report = build_report(store, options.database, options.window, alpha=options.alpha, drift=options.drift,
                          drift_current_seconds=options.drift_current_seconds)
    if options.save:
        save_report(store, report)
    if options.html_path is not None:
        try:
            options.html_path.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise QualityJobError(f"cannot write {options.html_path}: {exc.strerror}") from exc
    if options.metrics_file is not None:
        write_metrics(options.metrics_file, lambda m: publish(report, m))
    return report
