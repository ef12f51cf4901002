"""Drift detection per model version: request features of a current window against a reference window.

Features come from span columns (tokens, latency, TTFT, finish reason, tool-call rate, quality
scores); thresholds live in ``DriftConfig`` (YAML-loadable). A feature drifts when its Holm-adjusted
p-value is below ``alpha`` *and* its PSI reaches ``psi_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from quality.stats import FeatureDrift, categorical_drift, holm, numeric_drift
from sovtel.yamlconfig import ConfigError, YamlPath, load_yaml_model

NUMERIC_FEATURES: tuple[str, ...] = ("input_tokens", "output_tokens", "latency_ms", "ttft_s")
CATEGORICAL_FEATURES: tuple[str, ...] = ("finish_reason", "tool_call")
SCORES = "scores"
DEFAULT_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, SCORES)
TOOL_FINISH_REASONS = frozenset({"tool_calls", "tool_call", "function_call"})


class DriftConfig(BaseModel):
    """Thresholds of the drift test; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.01, gt=0.0, lt=0.5, description="Family-wise significance level per model.")
    psi_threshold: float = Field(default=0.1, ge=0.0, description="Minimum PSI for a significant shift to count.")
    min_samples: int = Field(default=100, ge=10, description="Fewer spans than this in a window: feature skipped.")
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins of the reference for PSI.")
    max_discrete_levels: int = Field(default=20, ge=2,
                                     description="Numeric features with this few distinct values use chi-square.")
    correction: Literal["holm", "none"] = "holm"
    features: list[str] = Field(default_factory=lambda: list(DEFAULT_FEATURES))
    max_score_features: int = Field(default=20, ge=0, description="At most this many quality-score keys are tested.")


class DriftConfigError(ConfigError, ValueError):
    """A drift configuration file is unreadable or invalid."""

    one_line = True


def _unknown_features(cfg: DriftConfig) -> list[tuple[YamlPath, str]]:
    unknown = [f for f in cfg.features if f not in DEFAULT_FEATURES and not f.startswith("score:")]
    if not unknown:
        return []
    return [(("features",), f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_FEATURES)}"
                            " or score:<name>")]


def load_drift_config(path: Path) -> DriftConfig:
    """Read a YAML file of DriftConfig keys; raises DriftConfigError listing every problem."""
    return load_yaml_model(path, DriftConfig, error=DriftConfigError, checks=[_unknown_features],
                           not_a_mapping="expected a mapping of drift settings")


@dataclass
class Features:
    """Per-request features of one model version in one window."""

    numeric: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0


def features_from_spans(table: pa.Table) -> Features:
    """Features from span columns (any subset of ``input_tokens``, ``output_tokens``, ``duration_ns``,
    ``ttft_s``, ``finish_reasons``, ``quality_scores`` and an optional boolean ``tool_call``)."""
    names = set(table.column_names)
    out = Features(rows=table.num_rows)

    def num(name: str) -> NDArray[np.float64]:
        return np.asarray(table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)

    if "input_tokens" in names:
        out.numeric["input_tokens"] = num("input_tokens")
    if "output_tokens" in names:
        out.numeric["output_tokens"] = num("output_tokens")
    if "duration_ns" in names:
        out.numeric["latency_ms"] = num("duration_ns") / 1e6
    if "ttft_s" in names:
        out.numeric["ttft_s"] = num("ttft_s")  # nulls become NaN and are ignored by the tests
    if "finish_reasons" in names:
        out.categorical["finish_reason"] = [str(v[0]) if v else "none"
                                            for v in table.column("finish_reasons").to_pylist()]
    if "tool_call" in names:
        out.categorical["tool_call"] = ["yes" if v else "no" for v in table.column("tool_call").to_pylist()]
    elif "finish_reasons" in names:
        out.categorical["tool_call"] = [
            "yes" if TOOL_FINISH_REASONS.intersection(v or ()) else "no"
            for v in table.column("finish_reasons").to_pylist()
        ]
    if "quality_scores" in names and table.num_rows:
        scores = table.column("quality_scores").combine_chunks()
        offsets = scores.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        start, end = int(offsets[0]), int(offsets[-1])
        keys = scores.keys.slice(start, end - start).to_numpy(zero_copy_only=False).astype(str)
        values = scores.items.slice(start, end - start).to_numpy(zero_copy_only=False).astype(np.float64)
        rows = np.repeat(np.arange(table.num_rows), np.diff(offsets))
        for key in sorted(set(keys.tolist())):
            column = np.full(table.num_rows, np.nan)
            hit = keys == key
            column[rows[hit]] = values[hit]
            out.numeric[f"score:{key}"] = column
    return out


@dataclass
class DriftReport:
    """Drift of one model version between a reference and a current window."""

    model: str
    reference: str
    current: str
    features: list[FeatureDrift]
    config: DriftConfig
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """Whether any feature drifted."""
        return any(f.drift for f in self.features)

    @property
    def status(self) -> str:
        """``drift``, ``no_drift`` or ``insufficient_data`` (nothing could be tested)."""
        if self.drift:
            return "drift"
        return "no_drift" if self.features else "insufficient_data"

    @property
    def min_p_adjusted(self) -> float:
        """The smallest adjusted p-value over the tested features (1 if none)."""
        return min((f.p_adjusted for f in self.features), default=1.0)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form (NaN becomes None)."""
        def clean(v: object) -> object:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "model": self.model, "reference": self.reference, "current": self.current, "status": self.status,
            "drift": self.drift, "min_p_adjusted": clean(self.min_p_adjusted),
            "config": self.config.model_dump(),
            "features": [{k: clean(v) for k, v in vars(f).items()} for f in self.features],
            "skipped": dict(self.skipped),
        }


def _selected(cfg: DriftConfig, reference: Features, current: Features) -> list[str]:
    wanted: list[str] = []
    for name in cfg.features:
        if name == SCORES:
            keys = sorted(k for k in reference.numeric if k.startswith("score:") and k in current.numeric)
            wanted.extend(k for k in keys[: cfg.max_score_features] if k not in wanted)
        elif name not in wanted:
            wanted.append(name)
    return wanted


def detect_drift(reference: Features, current: Features, cfg: DriftConfig | None = None, *, model: str = "",
                 reference_label: str = "", current_label: str = "") -> DriftReport:
    """Test every configured feature and decide drift with a multiple-testing correction."""
    cfg = cfg or DriftConfig()
    results: list[FeatureDrift] = []
    skipped: dict[str, str] = {}
    for name in _selected(cfg, reference, current):
        if name in reference.categorical and name in current.categorical:
            ref_c, cur_c = reference.categorical[name], current.categorical[name]
            n_ref, n_cur = len(ref_c), len(cur_c)
        elif name in reference.numeric and name in current.numeric:
            ref_n, cur_n = reference.numeric[name], current.numeric[name]
            n_ref, n_cur = int(np.isfinite(ref_n).sum()), int(np.isfinite(cur_n).sum())
        else:
            skipped[name] = "not available"
            continue
        if min(n_ref, n_cur) < cfg.min_samples:
            skipped[name] = f"too few samples ({n_ref} reference, {n_cur} current; need {cfg.min_samples})"
            continue
        if name in reference.categorical:
            focus = "yes" if name == "tool_call" else None
            results.append(categorical_drift(name, ref_c, cur_c, focus=focus))
        else:
            results.append(numeric_drift(name, ref_n, cur_n, bins=cfg.bins,
                                         max_discrete_levels=cfg.max_discrete_levels))
    p_values = [r.p_value for r in results]
    adjusted = holm(p_values) if cfg.correction == "holm" else list(p_values)
    results = [replace(r, p_adjusted=a, drift=bool(a < cfg.alpha and r.psi >= cfg.psi_threshold))
               for r, a in zip(results, adjusted, strict=True)]
    return DriftReport(model, reference_label, current_label, results, cfg, skipped)


def mark_tool_calls(spans: pa.Table) -> pa.Table:
    """``spans`` with a boolean ``tool_call`` column: the span's trace also holds an ``execute_tool`` span,
    or its finish reasons ask for a tool (the in-memory twin of the store query's join)."""
    tool_traces = spans.filter(pc.equal(spans.column("operation"), "execute_tool")).column("trace_id")
    in_tool_trace = pc.is_in(spans.column("trace_id"), value_set=tool_traces.combine_chunks())
    reasons = spans.column("finish_reasons").to_pylist()
    asks = pa.array([bool(TOOL_FINISH_REASONS.intersection(v or ())) for v in reasons], type=pa.bool_())
    return spans.append_column("tool_call", pc.or_(in_tool_trace, asks))


def split_by_model(table: pa.Table, models: Sequence[str] | None = None) -> Mapping[str, pa.Table]:
    """The rows of a span table per ``response_model`` (optionally only the given models)."""
    column = table.column("response_model")
    names = models if models is not None else sorted(set(column.to_pylist()))
    return {m: table.filter(pc.equal(column, m)) for m in names}
