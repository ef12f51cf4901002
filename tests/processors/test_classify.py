"""The classify processor: declared tier, mandatory tags, content and workload rules, stricter only."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from processors.classify import Config, create, validate_config
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry

TAGS = [("cloud.region", "eu-de-1"), ("deployment.environment", "prod")]


def classify(rows: list[dict[str, Any]], config: dict[str, Any] | None = None,
             signal: Signal = Signal.TRACES) -> tuple[list[str], Telemetry]:
    tel = Telemetry()
    proc = create(ComponentContext(name="classify", telemetry=tel.component("classify")),
                  Config.model_validate(config or {}))
    cols: dict[str, list[Any]] = {}
    for key in ("tier", "pii_count", "resource_attributes", "span_attributes", "trace_id", "request_model"):
        if any(key in r for r in rows) and (signal is Signal.TRACES or key in ("tier", "resource_attributes")):
            default: Any = [] if key.endswith("attributes") else (0 if key == "pii_count" else "")
            cols[key] = [r.get(key, default) for r in rows]
    out = proc(Batch(signal, table_from_columns(signal, cols)))
    return out.table.column("tier").to_pylist(), tel


@pytest.mark.parametrize(
    ("row", "tier"),
    [
        ({"tier": "sovereign", "resource_attributes": TAGS}, "sovereign"),
        ({"tier": "local", "resource_attributes": TAGS}, "local"),
        ({"tier": "", "resource_attributes": TAGS}, "local"),  # untagged
        ({"tier": "confidential", "resource_attributes": TAGS}, "local"),  # unknown value
        ({"tier": "sovereign", "resource_attributes": TAGS[:1]}, "local"),  # no environment
        ({"tier": "sovereign", "resource_attributes": [TAGS[0], ("deployment.environment.name", "prod")]},
         "sovereign"),  # the newer attribute name also counts
        ({"tier": "sovereign", "resource_attributes": TAGS, "pii_count": 2}, "sovereign"),
        ({"tier": "local", "resource_attributes": TAGS, "pii_count": 2}, "local"),  # rules only make stricter
        ({"tier": "public", "resource_attributes": TAGS, "pii_count": 1}, "sovereign"),  # PII found
        ({"tier": "sovereign", "resource_attributes": TAGS,
          "span_attributes": [("sovtel.workload.class", "high-risk")]}, "local"),
        ({"tier": "sovereign", "resource_attributes": [*TAGS, ("sovtel.workload.class", "high-risk")]}, "local"),
        ({"tier": "public", "resource_attributes": TAGS, "trace_id": "abc"}, "sovereign"),  # identifiable
        ({"tier": "public", "resource_attributes": TAGS}, "public"),
    ],
)
def test_default_rules(row: dict[str, Any], tier: str) -> None:
    """Each record gets the strictest of its declared tier, mandatory-tag check and rule floors."""
    assert classify([row])[0] == [tier]


def test_custom_yaml_rules_and_counters() -> None:
    """Rules from config (regex, in-list, negation) raise tiers, and raises are counted by reason."""
    config = {
        "required_resource_tags": ["cloud.region"],
        "rules": [
            {"name": "outside-eu", "when": [{"attribute": "cloud.region", "matches": "^eu-", "negate": True}],
             "tier": "local"},
            {"name": "medical-model", "when": [{"column": "request_model", "in": ["med-llm"]}], "tier": "sovereign"},
        ],
    }
    rows = [
        {"tier": "public", "resource_attributes": [("cloud.region", "us-east-1")]},
        {"tier": "public", "resource_attributes": [("cloud.region", "eu-west-1")], "request_model": "med-llm"},
        {"tier": "public", "resource_attributes": [("cloud.region", "eu-west-1")], "request_model": "small"},
    ]
    tiers, tel = classify(rows, config)
    assert tiers == ["local", "sovereign", "public"]
    assert tel.total("sovtel_tier_raised_records_total", reason="rule:outside-eu") == 1
    assert tel.total("sovtel_classified_records_total", tier="public") == 1


def test_metrics_classify_on_their_resource() -> None:
    """Metric rows are classified too (the workload rule reads the resource; no span columns needed)."""
    tiers, _ = classify([{"tier": "public", "resource_attributes": TAGS},
                         {"tier": "public", "resource_attributes": [*TAGS, ("sovtel.workload.class", "high-risk")]}],
                        signal=Signal.METRICS)
    assert tiers == ["public", "local"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": [{"name": "r", "when": [{"column": "pii_count"}], "tier": "local"}]}, "exactly one of in"),
        ({"rules": [{"name": "r", "when": [{"attribute": "a", "at_least": 1}], "tier": "local"}]}, "numeric column"),
        ({"rules": [{"name": "r", "when": [{"attribute": "a", "matches": "("}], "tier": "local"}]}, "regular"),
        ({"rules": [{"name": "r", "when": [{"attribute": "a", "in": ["x"]}], "tier": "secret"}]}, "tier"),
        ({"rules": [{"name": "r", "when": [], "tier": "local"}]}, "at least 1"),
        ({"required_resource_tags": ["a|"]}, "not an attribute key"),
    ],
)
def test_invalid_rules_are_rejected(config: dict[str, Any], message: str) -> None:
    """Malformed rules fail validation with a message saying what is wrong."""
    with pytest.raises(ValidationError, match=message):
        Config.model_validate(config)


def test_unknown_rule_column_is_reported() -> None:
    """A rule naming a column no signal has is reported by validate_config."""
    cfg = Config.model_validate({"rules": [{"name": "r", "when": [{"column": "nope", "in": ["x"]}], "tier": "local"}]})
    assert validate_config(cfg) == ["rules[0] (r).when[0]: unknown column 'nope'"]
