"""Tests for processors/quality.py: which spans get scores, evidence gathering, evaluations, map merging."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.otlp.decode import decode
from processors.minimise import Config as MinimiseConfig
from processors.minimise import create as create_minimise
from processors.quality import Config, create, validate_config
from sovtel.component import ComponentContext
from sovtel.config import ConfigError, parse_config
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry

DOCS = json.dumps([{"id": "d1", "score": 0.9,
                    "content": "The Berlin branch opens at 9:00 and closes at 17:00 from Monday to Friday."}])


def msgs(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def chat(answer: str, docs: str = DOCS, trace: str = "t1", **extra: Any) -> dict[str, Any]:
    return {"trace_id": trace, "operation": "chat", "response_model": "m-v1",
            "input_messages": msgs("user", "When does the Berlin branch open?"),
            "output_messages": msgs("assistant", answer), "retrieval_documents": docs, **extra}


def batch(rows: list[dict[str, Any]]) -> Batch:
    keys = sorted({k for r in rows for k in r})
    defaults: dict[str, Any] = {"event_names": [], "event_attributes": [], "span_attributes": [],
                                "quality_scores": [], "quality_labels": []}
    cols = {k: [r.get(k, defaults.get(k, "")) for r in rows] for k in keys}
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, cols))


def run(rows: list[dict[str, Any]], **cfg: Any) -> tuple[list[dict[str, float]], list[dict[str, str]], Telemetry]:
    tel = Telemetry()
    proc = create(ComponentContext("quality", tel.component("quality")), Config(**cfg))
    out = proc(batch(rows)).table
    scores = [dict(m) for m in out.column("quality_scores").to_pylist()]
    labels = [dict(m) for m in out.column("quality_labels").to_pylist()]
    return scores, labels, tel


class TestScoring:
    def test_only_spans_with_an_answer_get_scores(self) -> None:
        """Chat spans are scored; retrieval and tool spans (no output) keep empty maps."""
        scores, labels, _ = run([
            chat("The Berlin branch opens at 9:00."),
            {"trace_id": "t1", "operation": "retrieval", "retrieval_documents": DOCS},
            {"trace_id": "t1", "operation": "execute_tool", "tool_call_result": '{"ok": true}'},
        ])
        assert scores[0]["hallucination"] == 0.0 and scores[0]["empty"] == 0.0
        assert scores[1:] == [{}, {}] and labels[1:] == [{}, {}]

    @pytest.mark.parametrize(
        ("answer", "hallucination", "label"),
        [
            ("The Berlin branch opens at 9:00.", 0.0, "grounded"),
            ("The Berlin branch opens at 7:30.", 1.0, "ungrounded"),
            ("Sorry, I could not find that in the documents.", 0.0, "refusal"),
        ],
    )
    def test_decisions_land_in_the_maps(self, answer: str, hallucination: float, label: str) -> None:
        """The groundedness decision and its label are written to quality_scores / quality_labels."""
        scores, labels, _ = run([chat(answer)])
        assert scores[0]["hallucination"] == hallucination
        assert labels[0]["groundedness"] == label

    def test_no_evidence_gives_no_decision(self) -> None:
        """A plain chat without retrieval, tools or context gets refusal/empty scores but no hallucination."""
        scores, labels, _ = run([chat("Paris is the capital of France.", docs="")])
        assert "hallucination" not in scores[0] and scores[0]["empty"] == 0.0
        assert labels[0]["groundedness"] == "no_evidence"

    def test_empty_answer(self) -> None:
        """An assistant message with no text is scored empty = 1 and nothing else."""
        scores, labels, _ = run([chat("")])
        assert scores[0] == {"empty": 1.0}
        assert labels[0]["answer"] == "empty"

    @pytest.mark.parametrize(("from_trace", "expected"), [(True, 0.0), (False, None)])
    def test_evidence_from_sibling_spans(self, from_trace: bool, expected: float | None) -> None:
        """Retrieval results on another span of the same trace are evidence, unless switched off."""
        scores, _, _ = run([
            {"trace_id": "t9", "operation": "retrieval", "retrieval_documents": DOCS},
            chat("The Berlin branch opens at 9:00.", docs="", trace="t9"),
            chat("The Berlin branch opens at 9:00.", docs="", trace="other"),
        ], evidence_from_trace=from_trace)
        assert scores[1].get("hallucination") == expected
        assert "hallucination" not in scores[2]

    def test_tool_results_in_messages_are_evidence(self) -> None:
        """A tool role message (tool_call_response part) supports an answer built on it."""
        messages = json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "Where is order A-1042?"}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c",
                                        "response": {"order_id": "A-1042", "carrier": "DHL", "eta_days": 3}}]},
        ])
        good, _, _ = run([chat("Order A-1042 is with DHL and arrives in 3 days.", docs="", input_messages=messages)])
        bad, _, _ = run([chat("Order A-1042 is with UPS and arrives in 3 days.", docs="", input_messages=messages)])
        assert (good[0]["hallucination"], bad[0]["hallucination"]) == (0.0, 1.0)

    def test_content_columns_are_untouched(self) -> None:
        """The processor only adds scores: content columns leave exactly as they came."""
        rows = [chat("The Berlin branch opens at 9:00.")]
        tel = Telemetry()
        proc = create(ComponentContext("quality", tel.component("quality")), Config())
        before = batch(rows)
        after = proc(before)
        for name in ("input_messages", "output_messages", "retrieval_documents"):
            assert after.table.column(name).equals(before.table.column(name))

    def test_sliced_batches(self) -> None:
        """A batch whose table is a slice (non-zero offsets) is scored row for row."""
        b = batch([chat("x", docs=""), chat("The Berlin branch opens at 8:00."),
                   chat("The Berlin branch opens at 9:00.")])
        sliced = Batch(Signal.TRACES, b.table.slice(1, 2))
        proc = create(ComponentContext("q", Telemetry().component("q")), Config())
        scores = [dict(m) for m in proc(sliced).table.column("quality_scores").to_pylist()]
        assert [s["hallucination"] for s in scores] == [1.0, 0.0]

    def test_other_signals_pass_unchanged(self) -> None:
        """Log and metric batches are returned as they are."""
        proc = create(ComponentContext("q", Telemetry().component("q")), Config())
        logs = Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {"body": ["hello"]}))
        assert proc(logs) is logs

    def test_counters_by_model(self) -> None:
        """Checks and hallucinations are counted per response model on the pipeline's registry."""
        _, _, tel = run([chat("The Berlin branch opens at 9:00."), chat("The Berlin branch opens at 6:00."),
                         chat("Nothing to check.", docs="", trace="t2")])
        assert tel.total("sovtel_quality_hallucination_checks_total", model="m-v1") == 2
        assert tel.total("sovtel_quality_hallucinations_total", model="m-v1") == 1
        assert tel.total("sovtel_quality_scored_spans_total") == 3


EVAL = "gen_ai.evaluation.result"


class TestEvaluations:
    def test_events_become_eval_scores_and_labels(self) -> None:
        """gen_ai.evaluation.result events give eval:<name> scores and labels."""
        events = [("exception", {"exception.type": "x"}),
                  (EVAL, {"gen_ai.evaluation.name": "Relevance", "gen_ai.evaluation.score.value": "0.8",
                          "gen_ai.evaluation.score.label": "relevant"}),
                  (EVAL, {"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.label": "pass"})]
        row = chat("The Berlin branch opens at 9:00.", event_names=[e[0] for e in events],
                   event_attributes=[list(e[1].items()) for e in events])
        scores, labels, tel = run([row])
        assert scores[0]["eval:Relevance"] == 0.8
        assert labels[0]["eval:Relevance"] == "relevant"
        assert labels[0]["eval:toxicity"] == "pass" and "eval:toxicity" not in scores[0]
        assert scores[0]["hallucination"] == 0.0
        assert tel.total("sovtel_quality_evaluations_total", outcome="ingested") == 1

    def test_span_attributes_on_an_evaluation_span(self) -> None:
        """Evaluation attributes on a span (an evaluation span without an answer) are ingested too."""
        row = {"trace_id": "t", "operation": "evaluate",
               "span_attributes": [("gen_ai.evaluation.name", "faithfulness"),
                                   ("gen_ai.evaluation.score.value", "0.25")]}
        scores, _, _ = run([row])
        assert scores[0] == {"eval:faithfulness": 0.25}

    @pytest.mark.parametrize(
        "attributes",
        [
            {"gen_ai.evaluation.score.value": "0.5"},
            {"gen_ai.evaluation.name": "bad name with <html>", "gen_ai.evaluation.score.value": "0.5"},
            {"gen_ai.evaluation.name": "x", "gen_ai.evaluation.score.value": "nan"},
            {"gen_ai.evaluation.name": "x", "gen_ai.evaluation.score.value": "high"},
            {"gen_ai.evaluation.name": "x", "gen_ai.evaluation.score.label": "a" * 200},
        ],
    )
    def test_invalid_evaluations_are_counted_not_stored(self, attributes: dict[str, str]) -> None:
        """Missing or malformed names, non-finite or non-numeric scores and oversized labels are dropped and counted."""
        row = {"trace_id": "t", "event_names": [EVAL], "event_attributes": [list(attributes.items())]}
        scores, labels, tel = run([row])
        assert scores == [{}] and labels == [{}]
        assert tel.total("sovtel_quality_evaluations_total", outcome="invalid") == 1

    def test_switched_off(self) -> None:
        """With evaluations: false the events are ignored."""
        row = {"trace_id": "t", "event_names": [EVAL],
               "event_attributes": [[("gen_ai.evaluation.name", "x"), ("gen_ai.evaluation.score.value", "1")]]}
        scores, _, _ = run([row], evaluations=False)
        assert scores == [{}]


class TestMerging:
    def test_existing_entries_are_kept_and_ours_win_with_sorted_keys(self) -> None:
        """Upstream quality entries survive, a key we also write is replaced, and keys come out sorted."""
        row = chat("The Berlin branch opens at 9:00.", quality_scores=[("zz_upstream", 2.0), ("hallucination", 0.7)])
        b = batch([row])
        proc = create(ComponentContext("q", Telemetry().component("q")), Config())
        entries = proc(b).table.column("quality_scores").to_pylist()[0]
        keys = [k for k, _ in entries]
        assert keys == sorted(keys)
        d = dict(entries)
        assert d["zz_upstream"] == 2.0 and d["hallucination"] == 0.0
        assert len(keys) == len(set(keys))


class TestConfig:
    @pytest.mark.parametrize(
        ("cfg", "problem"),
        [
            ({"scorers": ["nope"]}, "unknown scorer"),
            ({"options": {"refusal": {}}, "scorers": ["groundedness"]}, "no scorer of that name"),
            ({"options": {"groundedness": {"threshold": 2}}}, "options.groundedness"),
            ({"plugins": ["no.such.module"]}, "cannot import"),
        ],
    )
    def test_problems_are_reported(self, cfg: dict[str, Any], problem: str) -> None:
        """Unknown scorers, stray or invalid options and broken plugins are configuration errors."""
        assert any(problem in p for p in validate_config(Config(**cfg)))

    def test_plugin_scorer_runs_and_a_failing_one_is_counted(self) -> None:
        """A plugin scorer adds its scores; one that raises is skipped and counted, the batch still passes."""
        plugin = "tests.processors.scorers.constant_plugin"
        scores, labels, _ = run([chat("The Berlin branch opens at 9:00.")], plugins=[plugin],
                                scorers=["groundedness", "test-plugin-constant"])
        assert scores[0]["constant"] == 0.5 and labels[0]["constant"] == "half"
        scores, _, tel = run([chat("The Berlin branch opens at 9:00.")], plugins=[plugin],
                             scorers=["groundedness", "test-plugin-constant"],
                             options={"test-plugin-constant": {"fail": True}})
        assert "constant" not in scores[0] and scores[0]["hallucination"] == 0.0
        assert tel.total("sovtel_quality_scorer_errors_total", scorer="test-plugin-constant") == 1

    def test_wired_as_a_pipeline_processor(self) -> None:
        """The core config loader finds type 'quality' and reports its validation problems with the path."""
        base: dict[str, Any] = {
            "receivers": {"otlp": {}}, "exporters": {"clickhouse": {"path": "store"}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["quality"],
                                                 "exporters": ["clickhouse"],
                                                 "unminimised": "test of the quality processor"}}},
        }
        try:
            cfg = parse_config({**base, "processors": {"quality": {"scorers": ["refusal", "groundedness"]}}})
        except ConfigError as exc:  # other components may not exist yet in this checkout
            assert not any("processors.quality" in e for e in exc.errors), exc.errors
        else:
            assert cfg.component("processors", "quality").type == "quality"
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "processors": {"quality": {"scorers": ["nope"]}}})
        assert any("unknown scorer" in e for e in err.value.errors)


def test_map_types_match_the_schema() -> None:
    """Output map columns keep the exact Arrow types of SPAN_SCHEMA."""
    proc = create(ComponentContext("q", Telemetry().component("q")), Config())
    b = batch([chat("The Berlin branch opens at 9:00.")])
    out = proc(b).table
    assert out.schema == b.table.schema
    assert isinstance(out.column("quality_labels").chunk(0), pa.MapArray)


class TestWithTheOtlpDecoder:
    def test_sdk_spans_through_decode_quality_and_minimise(self) -> None:
        """SDK spans decoded from OTLP are scored, evaluation events ingested, and scores outlive minimisation."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for answer in ("The Berlin branch opens at 9:00.", "The Berlin branch opens at 6:00."):
            with tracer.start_as_current_span("chat m", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.response.model": "m-v1",
                "gen_ai.input.messages": msgs("user", "When does the Berlin branch open?"),
                "gen_ai.output.messages": msgs("assistant", answer),
                "gen_ai.retrieval.documents": DOCS,
            }) as span:
                span.add_event(EVAL, {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9})
        table = decode(Signal.TRACES, encode_spans(exporter.get_finished_spans()).SerializeToString())
        tel = Telemetry()
        scored = create(ComponentContext("quality", tel.component("quality")), Config())(Batch(Signal.TRACES, table))
        kept = create_minimise(ComponentContext("minimise", tel.component("minimise")), MinimiseConfig())(scored)
        scores = [dict(m) for m in kept.table.column("quality_scores").to_pylist()]
        assert [s["hallucination"] for s in scores] == [0.0, 1.0]
        assert all(s["eval:relevance"] == 0.9 for s in scores)
        assert set(kept.table.column("output_messages").to_pylist()) == {""}
