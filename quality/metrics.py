"""Prometheus gauges the quality jobs publish (on a registry passed in, never the global one)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from quality.drift import DriftReport


class QualityMetrics:
    """Hallucination rates, version comparisons and drift results as gauges, for alert rules."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rate = Gauge("sovtel_quality_hallucination_rate",
                          "Share of checked answers judged hallucinated, latest bucket per model and period.",
                          ["model", "period"], registry=registry)
        self.rate_low = Gauge("sovtel_quality_hallucination_rate_lower",
                              "Lower bound of the 95% Wilson interval of the hallucination rate.",
                              ["model", "period"], registry=registry)
        self.rate_high = Gauge("sovtel_quality_hallucination_rate_upper",
                               "Upper bound of the 95% Wilson interval of the hallucination rate.",
                               ["model", "period"], registry=registry)
        self.samples = Gauge("sovtel_quality_hallucination_samples",
                             "Answers with a hallucination decision in the latest bucket.",
                             ["model", "period"], registry=registry)
        self.worse = Gauge("sovtel_quality_version_worse",
                           "1 when the candidate version hallucinates significantly more than the baseline.",
                           ["request_model", "baseline", "candidate"], registry=registry)
        self.version_p = Gauge("sovtel_quality_version_p_value",
                               "One-sided p-value of 'candidate hallucinates more than baseline'.",
                               ["request_model", "baseline", "candidate"], registry=registry)
        self.drift = Gauge("sovtel_quality_drift_detected", "1 when any feature of the model drifted.",
                           ["model"], registry=registry)
        self.drift_psi = Gauge("sovtel_quality_drift_psi", "Population stability index of a feature.",
                               ["model", "feature"], registry=registry)
        self.drift_p = Gauge("sovtel_quality_drift_p_value", "Holm-adjusted p-value of a feature's drift test.",
                             ["model", "feature"], registry=registry)
        self.last_success = Gauge("sovtel_quality_job_last_success_timestamp_seconds",
                                  "Unix time a quality job last finished.", ["job"], registry=registry)

    def publish_rate(self, model: str, period: str, *, n: int, events: int, low: float, high: float) -> None:
        """Set the gauges of one model's latest bucket."""
        self.samples.labels(model, period).set(n)
        if n:
            self.rate.labels(model, period).set(events / n)
            self.rate_low.labels(model, period).set(low)
            self.rate_high.labels(model, period).set(high)

    def publish_comparison(self, request_model: str, baseline: str, candidate: str, p_value: float,
                           worse: bool) -> None:
        """Set the gauges of one version comparison."""
        self.version_p.labels(request_model, baseline, candidate).set(p_value)
        self.worse.labels(request_model, baseline, candidate).set(1.0 if worse else 0.0)

    def publish_drift(self, reports: Iterable[DriftReport]) -> None:
        """Set the gauges of drift reports."""
        for report in reports:
            self.drift.labels(report.model).set(1.0 if report.drift else 0.0)
            for f in report.features:
                self.drift_psi.labels(report.model, f.feature).set(f.psi)
                self.drift_p.labels(report.model, f.feature).set(f.p_adjusted if math.isfinite(f.p_adjusted) else 1.0)

    def job_done(self, job: str, when: float | None = None) -> None:
        """Record that ``job`` finished."""
        self.last_success.labels(job).set(time.time() if when is None else when)

    def write(self, path: Path) -> None:
        """Write the registry in the text format (for node_exporter's textfile collector)."""
        write_to_textfile(str(path), self.registry)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose (e.g. ``…_total`` for counters)."""
    names: set[str] = set()
    for metric in registry.collect():
        names.add(metric.name)
        names.update(s.name for s in metric.samples)
        if metric.type == "counter":
            names.update({f"{metric.name}_total", f"{metric.name}_created"})
    return names
