"""Tests for quality.drift: injected shifts are found, A/A splits rarely alarm, thresholds load from YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quality.drift import (
    DriftConfig,
    DriftConfigError,
    Features,
    detect_drift,
    features_from_spans,
    load_drift_config,
    mark_tool_calls,
    split_by_model,
)
from quality.simulate import traffic_table

V2 = "llama-3.1-8b-instruct-v2"
CFG = DriftConfig(min_samples=50)


def chat_features(seed: int, requests: int = 1400, prompt_scale: dict[str, float] | None = None,
                  model: str = V2) -> Features:
    spans = mark_tool_calls(traffic_table(seed, requests, prompt_scale))
    chats = spans.filter(pc.equal(spans.column("operation"), "chat"))
    return features_from_spans(split_by_model(chats, [model])[model])


class TestDetection:
    @pytest.mark.parametrize("scale", [1.5, 2.0])
    def test_longer_prompts_for_one_version_are_detected(self, scale: float) -> None:
        """Prompts of v2 scaled by GenAITraffic(prompt_scale) drift on input_tokens with p < 0.01."""
        report = detect_drift(chat_features(1), chat_features(2, prompt_scale={V2: scale}), CFG, model=V2)
        tokens = next(f for f in report.features if f.feature == "input_tokens")
        assert report.drift and tokens.drift
        assert tokens.p_adjusted < 0.01 and tokens.psi >= CFG.psi_threshold
        assert tokens.current_summary > tokens.reference_summary

    def test_shift_of_another_model_is_not_blamed_on_v2(self) -> None:
        """Scaling v1's prompts leaves v2's features undisturbed (the knob is per response model)."""
        report = detect_drift(chat_features(3), chat_features(4, prompt_scale={"llama-3.1-8b-instruct-v1": 2.0}),
                              CFG, model=V2)
        assert not report.drift

    def test_aa_false_alarm_rate(self) -> None:
        """Over 40 seeds of unshifted traffic (independent windows) drift is declared in at most 5%."""
        seeds = 40
        alarms = sum(detect_drift(chat_features(100 + 2 * s, 900), chat_features(101 + 2 * s, 900), CFG).drift
                     for s in range(seeds))
        assert alarms / seeds <= 0.05

    def test_small_samples_do_not_trip_psi_alone(self) -> None:
        """With 60 spans per window PSI often exceeds 0.1 by chance, yet no drift is declared without significance."""
        rng = np.random.default_rng(0)
        high_psi, alarms = 0, 0
        for _ in range(100):
            a = Features(numeric={"input_tokens": rng.lognormal(5, 0.6, 60)}, rows=60)
            b = Features(numeric={"input_tokens": rng.lognormal(5, 0.6, 60)}, rows=60)
            r = detect_drift(a, b, DriftConfig(min_samples=50, features=["input_tokens"]))
            high_psi += r.features[0].psi >= 0.1
            alarms += r.drift
        assert high_psi > 50 and alarms <= 2


class TestReport:
    def test_too_few_samples_are_skipped_with_a_reason(self) -> None:
        """Features below min_samples are listed as skipped and the status says so when nothing is left."""
        a = Features(numeric={"input_tokens": np.ones(10)}, rows=10)
        report = detect_drift(a, a, DriftConfig(min_samples=20, features=["input_tokens", "ttft_s"]))
        assert report.status == "insufficient_data" and not report.drift
        assert "too few samples" in report.skipped["input_tokens"]
        assert report.skipped["ttft_s"] == "not available"

    def test_holm_correction_is_applied(self) -> None:
        """Adjusted p-values are never below the raw ones and 'none' leaves them equal."""
        ref, cur = chat_features(7), chat_features(8)
        holm = detect_drift(ref, cur, CFG)
        raw = detect_drift(ref, cur, DriftConfig(min_samples=50, correction="none"))
        for a, b in zip(holm.features, raw.features, strict=True):
            assert a.p_adjusted >= a.p_value and b.p_adjusted == b.p_value

    def test_json_form_has_no_nan(self) -> None:
        """as_dict turns NaN summaries into None so the JSON is valid."""
        a = Features(numeric={"x": np.array([np.nan] * 60)}, rows=60)
        b = Features(numeric={"x": np.arange(60.0)}, rows=60)
        out = detect_drift(a, b, DriftConfig(min_samples=10, features=["x"])).as_dict()
        assert out["status"] in {"insufficient_data", "no_drift"}


class TestFeatures:
    def test_scores_tokens_and_tool_calls(self) -> None:
        """Span columns become features; quality score keys become score:<key>; tool calls come from the trace."""
        spans = mark_tool_calls(traffic_table(5, 300))
        chats = spans.filter(pc.equal(spans.column("operation"), "chat"))
        scores = pa.array([[("groundedness", 0.5)]] * chats.num_rows, type=chats.schema.field("quality_scores").type)
        chats = chats.set_column(chats.schema.get_field_index("quality_scores"), "quality_scores", scores)
        f = features_from_spans(chats)
        assert {"input_tokens", "output_tokens", "latency_ms", "ttft_s", "score:groundedness"} <= set(f.numeric)
        assert set(f.categorical["tool_call"]) == {"yes", "no"}
        assert set(f.categorical["finish_reason"]) <= {"stop", "length", "error"}

    def test_all_default_features_are_tested_on_traffic(self) -> None:
        """On demo traffic every default feature family is available and tested."""
        report = detect_drift(chat_features(9), chat_features(10), CFG)
        assert {f.feature for f in report.features} >= {"input_tokens", "output_tokens", "latency_ms", "ttft_s",
                                                         "finish_reason", "tool_call"}


class TestConfigFile:
    def test_loads_thresholds(self, tmp_path: Path) -> None:
        """A YAML file sets the thresholds."""
        path = tmp_path / "drift.yaml"
        path.write_text("alpha: 0.001\npsi_threshold: 0.2\nfeatures: [input_tokens, score:eval:relevance]\n")
        cfg = load_drift_config(path)
        assert (cfg.alpha, cfg.psi_threshold) == (0.001, 0.2)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("alpah: 0.01\n", "alpah"),
            ("alpha: 0.9\n", "alpha"),
            ("features: [tokens]\n", "unknown feature"),
            ("- 1\n- 2\n", "mapping"),
            ("alpha: [\n", "YAML"),
        ],
    )
    def test_bad_files(self, tmp_path: Path, text: str, message: str) -> None:
        """Misspelt keys, out-of-range values, unknown features and broken YAML are clear errors."""
        path = tmp_path / "drift.yaml"
        path.write_text(text)
        with pytest.raises(DriftConfigError, match=message):
            load_drift_config(path)
