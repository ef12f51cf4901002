"""Tests for processors.genai_metrics: semconv histograms on /metrics, counted exactly, spans untouched."""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import generate_latest

from processors.genai_metrics import (
    HISTOGRAMS,
    OPERATION_DURATION_BOUNDS,
    TIME_PER_OUTPUT_TOKEN_BOUNDS,
    TIME_TO_FIRST_TOKEN_BOUNDS,
    TOKEN_USAGE_BOUNDS,
    Config,
    create,
)
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, empty_table
from sovtel.telemetry import Telemetry
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate
from tests.dashboards.spans import genai_spans, span_batch

MIGRATION = Path(__file__).resolve().parents[2] / "storage" / "migrations" / "0500_gpu_genai.sql"


def processor(tel: Telemetry | None = None, **cfg):
    tel = tel or Telemetry()
    return create(ComponentContext(name="genai_metrics", telemetry=tel.component("genai_metrics")), Config(**cfg)), tel


def reference(table: pa.Table) -> dict[str, dict[tuple[str, str], list[int]]]:
    """Expected bucket counts per metric and (response model, extra label), computed row by row."""
    out: dict[str, dict[tuple[str, str], list[int]]] = {d.name: {} for d in HISTOGRAMS}
    bounds = {d.name: d.bounds for d in HISTOGRAMS}

    def add(metric: str, key: tuple[str, str], value: float) -> None:
        counts = out[metric].setdefault(key, [0] * (len(bounds[metric]) + 1))
        counts[bisect.bisect_left(bounds[metric], value)] += 1

    for r in table.to_pylist():
        if not r["operation"]:
            continue
        failed = r["status_code"] == "ERROR" or r["error_type"] != ""
        model = r["response_model"]
        for kind in ("input", "output"):
            if r[f"{kind}_tokens"] > 0:
                add("gen_ai.client.token.usage", (model, kind), r[f"{kind}_tokens"])
        err = r["error_type"] or ("_OTHER" if failed else "")
        duration = r["duration_ns"] / 1e9
        add("gen_ai.client.operation.duration", (model, err), duration)
        ttft = r["ttft_s"]
        if not failed and ttft is not None:
            add("gen_ai.server.time_to_first_token", (model, ""), ttft)
            if r["output_tokens"] > 1 and duration >= ttft:
                add("gen_ai.server.time_per_output_token", (model, ""),
                    (duration - ttft) / (r["output_tokens"] - 1))
    return out


def observed(proc) -> dict[str, dict[tuple[str, str], list[int]]]:
    """The processor's counts per metric and (response model, extra label)."""
    out: dict[str, dict[tuple[str, str], list[int]]] = {}
    for name, h in proc.histograms.histograms.items():
        merged: dict[tuple[str, str], list[int]] = {}
        for labels, (counts, _sum) in h.snapshot().items():
            extra = labels[5] if len(labels) > 5 else ""
            key = (labels[3], extra)
            prev = merged.get(key, [0] * len(counts))
            merged[key] = [a + b for a, b in zip(prev, counts, strict=True)]
        out[name] = merged
    return out


class TestObserving:
    def test_batch_is_returned_unchanged(self) -> None:
        """The processor hands back the very batch it got; the spans are not touched."""
        proc, _ = processor()
        batch = span_batch(200)
        before = batch.table.to_pylist()
        out = proc(batch)
        assert out is batch and out.table.to_pylist() == before

    @pytest.mark.parametrize("metric", [d.name for d in HISTOGRAMS])
    def test_bucket_counts_match_a_row_by_row_reference(self, metric: str) -> None:
        """Each histogram's per-model bucket counts equal a plain per-span computation of the same rules."""
        proc, _ = processor()
        table = genai_spans(500, seed=3)
        proc(Batch(Signal.TRACES, table.slice(0, 230)))
        proc(Batch(Signal.TRACES, table.slice(230)))
        expected = reference(table)[metric]
        assert expected, "the generator must exercise every histogram"
        assert observed(proc)[metric] == expected

    def test_failed_operations_are_labelled_and_kept_out_of_server_latency(self) -> None:
        """Failed spans count in duration with error_type (or _OTHER) and never in TTFT or TPOT."""
        proc, _ = processor()
        table = genai_spans(300, seed=5)
        proc(Batch(Signal.TRACES, table))
        duration = proc.histograms.histograms["gen_ai.client.operation.duration"].snapshot()
        errors = {labels[5] for labels in duration}
        assert {"timeout", "_OTHER", ""} <= errors
        ok = sum(1 for r in table.to_pylist()
                 if r["operation"] and r["status_code"] == "OK" and r["ttft_s"] is not None)
        ttft_total = sum(sum(c) for c, _ in proc.histograms.histograms["gen_ai.server.time_to_first_token"]
                         .snapshot().values())
        assert ttft_total == ok

    @pytest.mark.parametrize("batch", [
        Batch(Signal.LOGS, empty_table(Signal.LOGS)),
        Batch(Signal.TRACES, genai_spans(10).set_column(
            genai_spans(10).schema.get_field_index("operation"), "operation", pa.array([""] * 10))),
        Batch(Signal.TRACES, empty_table(Signal.TRACES)),
    ], ids=["logs", "non-genai-spans", "empty"])
    def test_nothing_is_recorded_for_other_data(self, batch: Batch) -> None:
        """Logs, spans without a GenAI operation and empty batches record nothing."""
        proc, _ = processor()
        assert proc(batch) is batch
        assert all(not h.snapshot() for h in proc.histograms.histograms.values())

    def test_operations_allow_list(self) -> None:
        """With operations: [retrieval] only retrieval spans are recorded."""
        proc, _ = processor(operations=["retrieval"])
        proc(span_batch(100))
        ops = {labels[0] for h in proc.histograms.histograms.values() for labels in h.snapshot()}
        assert ops == {"retrieval"}

    def test_processors_on_one_registry_share_series(self) -> None:
        """Two processors on one pipeline registry (one per pipeline) share histograms instead of clashing."""
        tel = Telemetry()
        a, _ = processor(tel)
        b, _ = processor(tel)
        a(span_batch(50, seed=1))
        b(span_batch(50, seed=1))
        single, _ = processor()
        single(span_batch(50, seed=1))
        doubled = {k: [2 * x for x in v] for k, v in observed(single)["gen_ai.client.token.usage"].items()}
        assert observed(a)["gen_ai.client.token.usage"] == doubled


class TestExposition:
    def test_histograms_are_served_with_semconv_buckets(self) -> None:
        """/metrics carries the four families with the conventions' le values and +Inf equal to the count."""
        proc, tel = processor()
        proc(span_batch(300))
        text = generate_latest(tel.registry).decode()
        for d in HISTOGRAMS:
            les = sorted({float(m) for m in re.findall(rf'{d.prometheus}_bucket{{[^}}]*le="([0-9.e+]+)"', text)})
            assert les == sorted(float(b) for b in d.bounds), d.name
        for m in re.finditer(r'gen_ai_client_token_usage_bucket\{([^}]*)le="\+Inf"\} (\S+)', text):
            count = re.search(rf'gen_ai_client_token_usage_count\{{{re.escape(m.group(1).rstrip(","))}\}} (\S+)', text)
            assert count is not None and float(count.group(1)) == float(m.group(2))

    @pytest.mark.parametrize(("bounds", "expected"), [
        (TOKEN_USAGE_BOUNDS, [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                              67108864]),
        (OPERATION_DURATION_BOUNDS, [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                                     40.96, 81.92]),
        (TIME_TO_FIRST_TOKEN_BOUNDS, [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                      5.0, 7.5, 10.0]),
        (TIME_PER_OUTPUT_TOKEN_BOUNDS, [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]),
    ])
    def test_boundaries_are_the_semantic_conventions(self, bounds: tuple[float, ...], expected: list[float]) -> None:
        """The boundaries are the ExplicitBucketBoundaries the GenAI metric conventions specify."""
        assert list(bounds) == expected

    def test_sql_rollup_uses_the_same_boundaries(self) -> None:
        """The migration's roll-up literals equal the processor's boundaries, metric by metric."""
        sql = MIGRATION.read_text()
        found: dict[str, list[list[float]]] = {}
        for m in re.finditer(r"\('(gen_ai\.[a-z_.]+)',.*?\[([0-9., ]+)\]\)", sql, re.S):
            found.setdefault(m.group(1), []).append([float(x) for x in m.group(2).split(",")])
        for d in HISTOGRAMS:
            assert found[d.name], d.name
            assert all(b == [float(x) for x in d.bounds] for b in found[d.name]), d.name


def test_sql_rollup_counts_equal_the_processor(chdb_dsn: str, unique_db: str) -> None:
    """Spans stored in ClickHouse roll up into genai_histograms with the same bucket counts as /metrics."""
    table = genai_spans(400, seed=11)
    proc, _ = processor()
    proc(Batch(Signal.TRACES, table))
    store = Store.from_config(StoreConfig(dsn=chdb_dsn))
    try:
        migrate(store, SchemaSettings(database=unique_db), include_aiact=False)
        store.insert_arrow(f"{unique_db}.spans", table)
        rows = store.query_rows(
            f"SELECT metric, response_model, if(token_type != '', token_type, error_type), sumForEach(bucket_counts) "
            f"FROM {unique_db}.genai_histograms GROUP BY 1, 2, 3")
    finally:
        store.close()
    sql: dict[str, dict[tuple[str, str], list[int]]] = {}
    for metric, model, extra, counts in rows:
        sql.setdefault(metric, {})[(model, extra)] = [int(c) for c in counts]
    assert sql == observed(proc)
