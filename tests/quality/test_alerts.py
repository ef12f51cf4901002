"""Tests for quality/alerts.yaml: valid rules that only reference metrics sovtel exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

import quality
from processors.quality import Config, create
from quality.metrics import QualityMetrics, exported_names
from sovtel.component import ComponentContext
from sovtel.telemetry import Telemetry

RULES = Path(quality.__file__).parent / "alerts.yaml"
METRIC = re.compile(r"\b(sovtel_[a-z0-9_]+)")


def exported() -> set[str]:
    """Every metric name the quality jobs and the edge processor can expose."""
    registry = CollectorRegistry()
    QualityMetrics(registry)
    tel = Telemetry(registry)
    create(ComponentContext("quality", tel.component("quality")), Config())
    return exported_names(registry)


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_rules_file_shape() -> None:
    """The file is a Prometheus rule file: groups of named alerts with expr, severity and a summary."""
    found = rules()
    assert len(found) >= 5
    for r in found:
        assert r["alert"] and r["expr"]
        assert r["labels"]["severity"] in {"info", "warning", "critical"}  # type: ignore[index]
        assert r["annotations"]["summary"]  # type: ignore[index]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: str(r["alert"]))
def test_expressions_reference_exported_metrics(rule: dict[str, object]) -> None:
    """Each alert expression uses at least one sovtel metric, and only metrics that are really exported."""
    names = set(METRIC.findall(str(rule["expr"])))
    assert names, "an alert must watch at least one sovtel metric"
    assert names <= exported(), f"unknown metric(s): {sorted(names - exported())}"


def test_a_typo_would_be_caught() -> None:
    """The name check is not vacuous: a misspelt metric is not in the exported set."""
    assert "sovtel_quality_halucination_rate" not in exported()
    assert "sovtel_quality_hallucination_rate" in exported()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_rules() -> None:
    """Prometheus's own checker parses every rule and its PromQL."""
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
