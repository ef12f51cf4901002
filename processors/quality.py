"""Edge quality scoring: groundedness, refusal and empty-answer scores, plus external evaluations, per span.

Runs on raw content before minimisation and masking and writes only numbers and enumerated labels
to ``quality_scores`` / ``quality_labels``; content is never copied. Per-value Python work is
limited to the rows that carry an answer (and to rows with evaluation results).
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field

from processors.scorers import Scorer, ScorerError, ScoreResult, ScoringItem, available, create_scorer
from processors.scorers.text import document_texts, instructions_text, parse_input, parse_output
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.processors.quality")

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVAL_NAME = "gen_ai.evaluation.name"
EVAL_SCORE = "gen_ai.evaluation.score.value"
EVAL_LABEL = "gen_ai.evaluation.score.label"
EVAL_PREFIX = "eval:"
_EVAL_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
_LABEL_OK = re.compile(r"^[\w.:/ -]{1,64}$", re.UNICODE)


class Config(ComponentConfig):
    """Which scorers run, their options, and whether external evaluations are ingested."""

    scorers: list[str] = Field(default_factory=lambda: ["refusal", "groundedness"],
                               description="Registered scorer names, run in order; later ones win on a shared key.")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Options per scorer name.")
    plugins: list[str] = Field(default_factory=list,
                               description="Modules to import first; they register further scorers.")
    evidence_from_trace: bool = Field(
        default=True,
        description="Also use retrieval and tool results of other spans of the same trace in the same batch.")
    evaluations: bool = Field(default=True, description="Ingest gen_ai.evaluation.result events and attributes.")


# Packages a plugin may not come from: processors transform and return; they never reach storage,
# the jobs or the app (the layer rule the import check enforces for the modules it can see).
FORBIDDEN_PLUGIN_PACKAGES = ("storage", "retention", "quality", "dashboards", "app", "evaluation")


def _load_plugins(cfg: Config) -> list[str]:
    problems = []
    for module in cfg.plugins:
        package = module.lstrip(".").split(".", 1)[0]
        if module.startswith(".") or package in FORBIDDEN_PLUGIN_PACKAGES:
            problems.append(
                f"plugins: {module!r} is not allowed (a scorer plugin is an absolute module outside "
                f"{', '.join(FORBIDDEN_PLUGIN_PACKAGES)}; processors never reach storage or jobs)"
            )
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import failure is a configuration problem to report, not a crash
            problems.append(f"plugins: cannot import {module!r} ({type(exc).__name__}: {exc})")
    return problems


def validate_config(cfg: Config) -> list[str]:
    """Problems pydantic cannot see: unknown scorers, bad options, plugins that do not import."""
    problems = _load_plugins(cfg)
    known = set(available())
    for name in cfg.scorers:
        if name not in known:
            problems.append(f"scorers: unknown scorer {name!r} (registered: {', '.join(sorted(known))})")
            continue
        try:
            create_scorer(name, cfg.options.get(name, {}))
        except (ScorerError, ValueError) as exc:
            problems.append(f"options.{name}: {exc}")
    for name in cfg.options:
        if name not in cfg.scorers:
            problems.append(f"options.{name}: no scorer of that name is configured")
    return problems


@dataclass
class _Metrics:
    scored: Counter
    checks: Counter
    hallucinations: Counter
    evaluations: Counter
    errors: Counter


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


def _metrics(registry: CollectorRegistry) -> _Metrics:
    """The edge-quality counters of a registry, created once per registry (several processors may share it)."""
    with _METRICS_LOCK:
        found = _METRICS.get(registry)
        if found is None:
            found = _Metrics(
                scored=Counter("sovtel_quality_scored_spans", "Spans with an answer that the quality scorers saw.",
                               ["component"], registry=registry),
                checks=Counter("sovtel_quality_hallucination_checks",
                               "Answers that got a hallucination decision (had evidence to check), by response model.",
                               ["component", "model"], registry=registry),
                hallucinations=Counter("sovtel_quality_hallucinations",
                                       "Answers the groundedness scorer judged hallucinated, by response model.",
                                       ["component", "model"], registry=registry),
                evaluations=Counter("sovtel_quality_evaluations",
                                    "External evaluation results seen, by outcome (ingested or invalid).",
                                    ["component", "outcome"], registry=registry),
                errors=Counter("sovtel_quality_scorer_errors", "Batches a scorer failed on (scores left out).",
                               ["component", "scorer"], registry=registry),
            )
            _METRICS[registry] = found
        return found


def _strings(table: pa.Table, name: str, rows: np.ndarray) -> list[str]:
    return [str(v) for v in table.column(name).take(pa.array(rows, type=pa.int64())).to_pylist()]


def _map_entries(arr: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(row of each entry, keys, values) of a map array, honouring a slice (``.keys`` alone does not)."""
    offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    keys, values = arr.keys, arr.items
    if start != 0 or len(keys) != end:
        keys, values = keys.slice(start, end - start), values.slice(start, end - start)
    parents = np.repeat(np.arange(len(arr), dtype=np.int64), np.diff(offsets))
    return parents, keys, values


def _nonempty_rows(column: pa.ChunkedArray) -> np.ndarray:
    mask = pc.fill_null(pc.not_equal(column, ""), False)
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


class Quality:
    """The processor: scores answer-bearing spans and ingests evaluation results into the quality maps."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.scorers: list[Scorer] = []
        self.metrics = _metrics(ctx.telemetry.telemetry.registry)
        self._started = False
        self._lock = threading.Lock()

    def start(self, context: ComponentContext) -> None:
        """Import the plugins and build the scorers; ValueError listing every problem, each under its config key."""
        with self._lock:
            if self._started:
                return
            problems = validate_config(self.cfg)
            if problems:
                raise ValueError("; ".join(f"processors.{context.name}.{p}" for p in problems))
            self.scorers = [create_scorer(n, self.cfg.options.get(n, {})) for n in self.cfg.scorers]
            self._started = True

    def shutdown(self) -> None:
        """Release the scorers (and whatever models they hold); idempotent and safe without start."""
        with self._lock:
            self.scorers = []
            self._started = False

    def _ensure_started(self) -> None:
        """Start now if the runtime did not (a library caller), as creating the processor did before."""
        if not self._started:
            self.start(self.ctx)

    # -- evidence and items -------------------------------------------------------------------

    def _trace_evidence(self, table: pa.Table, answer_rows: np.ndarray) -> dict[str, list[tuple[int, str]]]:
        """Retrieval and tool results of spans whose trace also has an answer in this batch, by trace id."""
        if not self.cfg.evidence_from_trace:
            return {}
        has_docs = pc.fill_null(pc.not_equal(table.column("retrieval_documents"), ""), False)
        has_tool = pc.fill_null(pc.not_equal(table.column("tool_call_result"), ""), False)
        rows = np.flatnonzero(pc.or_(has_docs, has_tool).to_numpy(zero_copy_only=False))
        if not len(rows):
            return {}
        answer_traces = set(_strings(table, "trace_id", answer_rows))
        traces = _strings(table, "trace_id", rows)
        wanted = [i for i, t in enumerate(traces) if t in answer_traces]
        if not wanted:
            return {}
        rows = rows[wanted]
        traces = [traces[i] for i in wanted]
        docs = _strings(table, "retrieval_documents", rows)
        tools = _strings(table, "tool_call_result", rows)
        out: dict[str, list[tuple[int, str]]] = {}
        for row, trace, d, t in zip(rows.tolist(), traces, docs, tools, strict=True):
            texts = [*document_texts(d), *document_texts(t)]
            out.setdefault(trace, []).extend((row, x) for x in texts)
        return out

    def items(self, table: pa.Table, rows: np.ndarray) -> list[ScoringItem]:
        """The scoring items of the given rows (which must carry an answer)."""
        trace_evidence = self._trace_evidence(table, rows)
        cols = {name: _strings(table, name, rows) for name in (
            "input_messages", "output_messages", "retrieval_documents", "tool_call_result", "system_instructions",
            "trace_id")}
        items: list[ScoringItem] = []
        for i, row in enumerate(rows.tolist()):
            conv = parse_input(cols["input_messages"][i])
            answer = parse_output(cols["output_messages"][i])
            evidence = [
                *document_texts(cols["retrieval_documents"][i]),
                *document_texts(cols["tool_call_result"][i]),
                *conv.context,
                *instructions_text(cols["system_instructions"][i]),
                *(text for src, text in trace_evidence.get(cols["trace_id"][i], ()) if src != row),
            ]
            items.append(ScoringItem(answer=answer.text, question=conv.question, history=conv.history,
                                     evidence=tuple(evidence), tool_call=answer.tool_call))
        return items

    # -- scoring --------------------------------------------------------------------------------

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        """Run every configured scorer over the items; a failing scorer is counted and skipped."""
        self._ensure_started()
        merged = [ScoreResult() for _ in items]
        for scorer in self.scorers:
            try:
                results = scorer.score(items)
                if len(results) != len(items):
                    raise ScorerError(f"returned {len(results)} results for {len(items)} items")
            except Exception:  # a scorer must never take the pipeline down; its scores are left out
                log.exception("quality scorer %s failed on a batch of %d items", scorer.name, len(items))
                self.metrics.errors.labels(self.ctx.name, scorer.name).inc()
                continue
            for into, res in zip(merged, results, strict=True):
                into.scores.update({k: float(v) for k, v in res.scores.items() if math.isfinite(float(v))})
                into.labels.update({k: str(v) for k, v in res.labels.items()})
        return merged

    def _evaluations(self, table: pa.Table) -> dict[int, ScoreResult]:
        """``eval:<name>`` scores and labels from evaluation events and span attributes, by row."""
        found: dict[int, ScoreResult] = {}
        invalid = 0

        def take(row: int, attrs: Mapping[str, str]) -> None:
            nonlocal invalid
            name = str(attrs.get(EVAL_NAME, "")).strip().replace(" ", "_")
            if not _EVAL_NAME_OK.match(name):
                invalid += 1
                return
            key = EVAL_PREFIX + name
            res = found.setdefault(row, ScoreResult())
            usable = False
            raw_score = attrs.get(EVAL_SCORE)
            if raw_score not in (None, ""):
                try:
                    value = float(str(raw_score))
                except ValueError:
                    value = math.nan
                if math.isfinite(value):
                    res.scores[key] = value
                    usable = True
            label = str(attrs.get(EVAL_LABEL, "")).strip()
            if label and _LABEL_OK.match(label):
                res.labels[key] = label
                usable = True
            if not usable:
                invalid += 1

        names = table.column("event_names").combine_chunks()
        flat = pc.list_flatten(names)
        if len(flat):
            hits = np.flatnonzero(pc.fill_null(pc.equal(flat, EVALUATION_EVENT), False).to_numpy(zero_copy_only=False))
            if len(hits):
                parents = pc.list_parent_indices(names).to_numpy(zero_copy_only=False)
                attrs_col = table.column("event_attributes").combine_chunks()
                name_len = pc.list_value_length(names).to_numpy(zero_copy_only=False)
                attr_len = pc.list_value_length(attrs_col).to_numpy(zero_copy_only=False)
                flat_attrs = pc.list_flatten(attrs_col)
                # Event i of a row pairs name i with attribute map i; rows where the lists disagree are skipped.
                start = np.concatenate([[0], np.cumsum(name_len)])
                astart = np.concatenate([[0], np.cumsum(attr_len)])
                for pos in hits.tolist():
                    row = int(parents[pos])
                    if name_len[row] != attr_len[row]:
                        invalid += 1
                        continue
                    entry = flat_attrs[int(astart[row] + (pos - start[row]))].as_py() or []
                    take(row, dict(entry))
        span_attrs = table.column("span_attributes").combine_chunks()
        parents, keys, _ = _map_entries(span_attrs)
        if len(keys):
            hits = np.flatnonzero(pc.fill_null(pc.equal(keys, EVAL_NAME), False).to_numpy(zero_copy_only=False))
            if len(hits):
                for row in sorted({int(parents[h]) for h in hits.tolist()}):
                    take(row, dict(span_attrs[row].as_py() or []))
        n_ok = sum(len(r.scores) + len(r.labels) > 0 for r in found.values())
        if n_ok:
            self.metrics.evaluations.labels(self.ctx.name, "ingested").inc(n_ok)
        if invalid:
            self.metrics.evaluations.labels(self.ctx.name, "invalid").inc(invalid)
        return {row: r for row, r in found.items() if r.scores or r.labels}

    def _count_decisions(self, table: pa.Table, rows: np.ndarray, results: Sequence[ScoreResult]) -> None:
        decided = [(int(r), res.scores["hallucination"]) for r, res in zip(rows.tolist(), results, strict=True)
                   if "hallucination" in res.scores]
        if not decided:
            return
        models = _strings(table, "response_model", np.asarray([r for r, _ in decided], dtype=np.int64))
        checks: dict[str, int] = {}
        flagged: dict[str, int] = {}
        for model, (_, value) in zip(models, decided, strict=True):
            name = model or "unknown"
            checks[name] = checks.get(name, 0) + 1
            if value >= 0.5:
                flagged[name] = flagged.get(name, 0) + 1
        for name, n in checks.items():
            self.metrics.checks.labels(self.ctx.name, name).inc(n)
            if flagged.get(name):
                self.metrics.hallucinations.labels(self.ctx.name, name).inc(flagged[name])

    def __call__(self, batch: Batch) -> Batch:
        """Add quality scores and labels to the spans of a trace batch; other signals pass unchanged."""
        if batch.signal is not Signal.TRACES or batch.rows == 0:
            return batch
        self._ensure_started()
        table = batch.table
        per_row: dict[int, ScoreResult] = {}
        rows = _nonempty_rows(table.column("output_messages"))
        if len(rows) and self.scorers:
            results = self.score(self.items(table, rows))
            per_row = {int(r): res for r, res in zip(rows.tolist(), results, strict=True) if res.scores or res.labels}
            self.metrics.scored.labels(self.ctx.name).inc(len(rows))
            self._count_decisions(table, rows, results)
        if self.cfg.evaluations:
            for row, res in self._evaluations(table).items():
                into = per_row.setdefault(row, ScoreResult())
                into.scores.update(res.scores)
                into.labels.update(res.labels)
        if not per_row:
            return batch
        table = _merge_map(table, "quality_scores", {r: res.scores for r, res in per_row.items() if res.scores})
        table = _merge_map(table, "quality_labels", {r: res.labels for r, res in per_row.items() if res.labels})
        return batch.replace(table)


def _merge_map(table: pa.Table, name: str, new: Mapping[int, Mapping[str, Any]]) -> pa.Table:
    """``table`` with ``new`` entries merged into map column ``name`` (new values win); keys sorted per row."""
    if not new:
        return table
    field = table.schema.field(name)
    parents, old_keys, old_values = _map_entries(table.column(name).combine_chunks())
    keep = np.ones(len(parents), dtype=bool)
    touched = np.isin(parents, np.fromiter(new.keys(), dtype=np.int64, count=len(new)))
    if touched.any():
        key_list = old_keys.to_pylist()
        for pos in np.flatnonzero(touched).tolist():
            if key_list[pos] in new[int(parents[pos])]:
                keep[pos] = False
    new_rows = [r for r, m in new.items() for _ in m]
    new_keys = [k for m in new.values() for k in m]
    new_values = [v for m in new.values() for v in m.values()]
    value_type = field.type.item_type
    merged = pa.table({
        "row": pa.concat_arrays([pa.array(parents[keep], type=pa.int64()), pa.array(new_rows, type=pa.int64())]),
        "key": pa.concat_arrays([old_keys.filter(pa.array(keep)).cast(pa.string()), pa.array(new_keys, pa.string())]),
        "value": pa.concat_arrays([old_values.filter(pa.array(keep)).cast(value_type),
                                   pa.array(new_values, type=value_type)]),
    }).sort_by([("row", "ascending"), ("key", "ascending")])
    counts = np.bincount(merged.column("row").to_numpy(), minlength=table.num_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    out = pa.MapArray.from_arrays(pa.array(offsets), merged.column("key").combine_chunks(),
                                  merged.column("value").combine_chunks(), type=field.type)
    i = table.schema.get_field_index(name)
    return table.set_column(i, field, out)


def create(ctx: ComponentContext, config: Config) -> Quality:
    """Build the quality processor; ``start`` imports its plugins and builds its scorers."""
    return Quality(ctx, config)
