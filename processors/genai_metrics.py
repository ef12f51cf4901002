"""GenAI metrics from spans: the semantic conventions' four histograms, on the pipeline's /metrics.

The processor only observes: every batch leaves exactly as it came. Bucket counting is vectorised
(numpy over the batch's columns), so no Python object is made per span.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field

from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import Batch, Signal

# ExplicitBucketBoundaries from the OpenTelemetry GenAI metric conventions; the SQL roll-up in
# storage/migrations/0500_gpu_genai.sql uses the same literals (a test keeps them equal).
TOKEN_USAGE_BOUNDS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
OPERATION_DURATION_BOUNDS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TIME_TO_FIRST_TOKEN_BOUNDS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
TIME_PER_OUTPUT_TOKEN_BOUNDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)

# Span label columns → Prometheus label names (GenAI attribute names with dots as underscores).
LABEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("operation", "gen_ai_operation_name"),
    ("provider", "gen_ai_provider_name"),
    ("request_model", "gen_ai_request_model"),
    ("response_model", "gen_ai_response_model"),
    ("tier", "tier"),
)
ERROR_STATUSES: tuple[str, ...] = ("ERROR", "STATUS_CODE_ERROR")


@dataclass(frozen=True)
class HistogramDef:
    """One GenAI histogram: its convention name, Prometheus name, boundaries and extra label."""

    name: str
    prometheus: str
    unit: str
    bounds: tuple[float, ...]
    description: str
    extra_label: str | None = None


HISTOGRAMS: tuple[HistogramDef, ...] = (
    HistogramDef("gen_ai.client.token.usage", "gen_ai_client_token_usage", "{token}", TOKEN_USAGE_BOUNDS,
                 "Number of input and output tokens used.", "gen_ai_token_type"),
    HistogramDef("gen_ai.client.operation.duration", "gen_ai_client_operation_duration_seconds", "s",
                 OPERATION_DURATION_BOUNDS, "GenAI operation duration.", "error_type"),
    HistogramDef("gen_ai.server.time_to_first_token", "gen_ai_server_time_to_first_token_seconds", "s",
                 TIME_TO_FIRST_TOKEN_BOUNDS, "Time to generate first token for successful responses."),
    HistogramDef("gen_ai.server.time_per_output_token", "gen_ai_server_time_per_output_token_seconds", "s",
                 TIME_PER_OUTPUT_TOKEN_BOUNDS, "Time per output token generated after the first token for "
                 "successful responses."),
)


class Config(ComponentConfig):
    """Which spans count: GenAI operations (all of them unless ``operations`` lists some)."""

    operations: list[str] = Field(
        default_factory=list, description="Only these gen_ai.operation.name values (empty: every GenAI span)."
    )


class BulkHistogram:
    """A labelled histogram that takes whole arrays at once; thread-safe."""

    def __init__(self, definition: HistogramDef) -> None:
        self.definition = definition
        self.bounds = np.asarray(definition.bounds, dtype=np.float64)
        self._series: dict[tuple[str, ...], tuple[np.ndarray, float]] = {}
        self._lock = threading.Lock()

    def observe(self, labels: Sequence[tuple[str, ...]], group: np.ndarray, values: np.ndarray) -> None:
        """Add ``values``; ``group[i]`` indexes ``labels`` for value ``i``."""
        if values.size == 0:
            return
        nb = len(self.bounds) + 1
        # side="left": a value equal to a boundary falls in that boundary's bucket (le is inclusive).
        bucket = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(group * nb + bucket, minlength=len(labels) * nb).reshape(len(labels), nb)
        sums = np.bincount(group, weights=values, minlength=len(labels))
        with self._lock:
            for g, key in enumerate(labels):
                if not counts[g].any():
                    continue
                old = self._series.get(key)
                if old is None:
                    self._series[key] = (counts[g].astype(np.int64), float(sums[g]))
                else:
                    self._series[key] = (old[0] + counts[g], old[1] + float(sums[g]))

    def family(self, label_names: Sequence[str]) -> HistogramMetricFamily:
        """The Prometheus family of every series seen so far (cumulative buckets)."""
        d = self.definition
        fam = HistogramMetricFamily(d.prometheus, d.description, labels=list(label_names))
        with self._lock:
            items = sorted(self._series.items())
        for key, (counts, total) in items:
            cumulative = np.cumsum(counts)
            buckets = [(_le(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            fam.add_metric(list(key), buckets, total)
        return fam

    def snapshot(self) -> dict[tuple[str, ...], tuple[list[int], float]]:
        """Per label tuple: bucket counts (not cumulative, +Inf last) and sum; for tests and reports."""
        with self._lock:
            return {k: ([int(x) for x in c], s) for k, (c, s) in self._series.items()}


def _le(bound: float) -> str:
    return repr(float(bound))


class GenAIHistograms(Collector):
    """The four histograms of one registry, shared by every genai_metrics processor on it."""

    def __init__(self) -> None:
        self.histograms = {d.name: BulkHistogram(d) for d in HISTOGRAMS}

    def describe(self) -> list[Metric]:
        # Names are fixed; describing them lets the registry refuse a clashing collector.
        return [h.family(self._labels(h.definition)) for h in self.histograms.values()]

    @staticmethod
    def _labels(d: HistogramDef) -> list[str]:
        names = [label for _, label in LABEL_COLUMNS]
        if d.extra_label:
            names.append(d.extra_label)
        return names

    def collect(self) -> Iterator[Metric]:
        """Yield the four histogram families."""
        for h in self.histograms.values():
            yield h.family(self._labels(h.definition))


_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, GenAIHistograms] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def histograms_for(registry: CollectorRegistry) -> GenAIHistograms:
    """The histograms registered on ``registry`` (created and registered on first use).

    The runtime creates a processor once per pipeline that lists it; sharing keeps one set of
    series per /metrics endpoint instead of a duplicate-name error.
    """
    with _SHARED_LOCK:
        h = _SHARED.get(registry)
        if h is None:
            h = GenAIHistograms()
            registry.register(h)
            _SHARED[registry] = h
        return h


def _strings(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return pc.fill_null(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col, "")


def _group(columns: Sequence[pa.Array]) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Unique label tuples and each row's index into them, without a Python loop over rows."""
    n = len(columns[0])
    code = np.zeros(n, dtype=np.int64)
    dictionaries: list[list[str]] = []
    for col in columns:
        enc = pc.dictionary_encode(col)
        dictionary = [str(x) for x in enc.dictionary.to_pylist()]
        idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        code = code * max(len(dictionary), 1) + idx
        dictionaries.append(dictionary)
    uniq, inverse = np.unique(code, return_inverse=True)
    labels: list[tuple[str, ...]] = []
    for combined in uniq.tolist():
        parts: list[str] = []
        rest = int(combined)
        for dictionary in reversed(dictionaries):
            size = max(len(dictionary), 1)
            parts.append(dictionary[rest % size] if dictionary else "")
            rest //= size
        labels.append(tuple(reversed(parts)))
    return labels, inverse.astype(np.int64)


class GenAIMetrics:
    """The processor: observes GenAI spans into the histograms and returns the batch unchanged."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.histograms = histograms_for(ctx.telemetry.telemetry.registry)
        self._operations = pa.array(cfg.operations, type=pa.string()) if cfg.operations else None

    def __call__(self, batch: Batch) -> Batch:
        """Record the batch's GenAI spans; the batch is returned as it came (same object)."""
        if batch.signal is not Signal.TRACES or batch.rows == 0:
            return batch
        table = batch.table
        operation = _strings(table, "operation")
        keep = pc.not_equal(operation, "")
        if self._operations is not None:
            keep = pc.and_(keep, pc.is_in(operation, value_set=self._operations))
        if not pc.any(keep).as_py():
            return batch
        t = table.filter(keep)
        labels = [_strings(t, col) for col, _ in LABEL_COLUMNS]
        status = pc.utf8_upper(_strings(t, "status_code"))
        error_type = _strings(t, "error_type")
        failed = pc.or_(pc.is_in(status, value_set=pa.array(ERROR_STATUSES)), pc.not_equal(error_type, ""))
        failed_np = failed.to_numpy(zero_copy_only=False).astype(bool)
        duration = t.column("duration_ns").to_numpy().astype(np.float64) / 1e9
        input_tokens = t.column("input_tokens").to_numpy().astype(np.float64)
        output_tokens = t.column("output_tokens").to_numpy().astype(np.float64)
        ttft = pc.fill_null(t.column("ttft_s"), np.nan).to_numpy().astype(np.float64)

        h = self.histograms.histograms
        # Token usage: one observation per token type, when the count is there.
        for token_type, values in (("input", input_tokens), ("output", output_tokens)):
            rows = np.flatnonzero(values > 0)
            self._observe(h["gen_ai.client.token.usage"], labels, rows, values, pa.array([token_type] * len(t)))
        # Duration of every operation, labelled with its error type (semconv: _OTHER when unnamed).
        error_label = pc.if_else(pc.not_equal(error_type, ""), error_type,
                                 pc.if_else(failed, pa.scalar("_OTHER"), pa.scalar("")))
        rows = np.flatnonzero(np.isfinite(duration) & (duration >= 0))
        self._observe(h["gen_ai.client.operation.duration"], labels, rows, duration, error_label)
        # Server-side latency histograms count successful responses only.
        ok_ttft = ~failed_np & np.isfinite(ttft) & (ttft >= 0)
        self._observe(h["gen_ai.server.time_to_first_token"], labels, np.flatnonzero(ok_ttft), ttft, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = (duration - ttft) / (output_tokens - 1)
        ok_tpot = ok_ttft & (output_tokens > 1) & (duration >= ttft)
        self._observe(h["gen_ai.server.time_per_output_token"], labels, np.flatnonzero(ok_tpot), tpot, None)
        return batch

    @staticmethod
    def _observe(hist: BulkHistogram, labels: list[pa.Array], rows: np.ndarray, values: np.ndarray,
                 extra: pa.Array | None) -> None:
        if rows.size == 0:
            return
        take = pa.array(rows)
        cols = [c.take(take) for c in labels]
        if extra is not None:
            cols.append(extra.take(take))
        keys, group = _group(cols)
        hist.observe(keys, group, values[rows])


def create(ctx: ComponentContext, config: Config) -> GenAIMetrics:
    """Build the GenAI metrics processor."""
    return GenAIMetrics(ctx, config)
