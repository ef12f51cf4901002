"""Synthetic GenAI traffic as span tables, fast: the demo's generator on a recording tracer, for drift tests
and benchmarks (an in-memory double that ships with the package, so users can test their thresholds too)."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
from opentelemetry import trace as api
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan

from collectors.traffic import GenAITraffic
from sovtel.records import Signal, table_from_columns

_ids = itertools.count(1)


class RecordedSpan(NonRecordingSpan):
    """What the generator set on one span; ends by handing itself to its tracer.

    A ``Span`` subclass, so the API's context helpers accept it as a parent.
    """

    def __init__(self, name: str, start: int, attributes: dict[str, Any], parent: RecordedSpan | None,
                 sink: list[RecordedSpan]) -> None:
        super().__init__(INVALID_SPAN_CONTEXT)
        self.name = name
        self.start = start
        self.attributes = attributes
        self.parent = parent
        self.sink = sink
        self.end_ns = 0
        self.status_error = False
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.span_id = next(_ids)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.events.append((name, dict(attributes or {})))

    def set_status(self, status: Any, description: str | None = None) -> None:
        self.status_error = getattr(getattr(status, "status_code", None), "name", "") == "ERROR"

    def end(self, end_time: int | None = None) -> None:
        self.end_ns = int(end_time or 0)
        self.sink.append(self)

    def is_recording(self) -> bool:
        return True


class RecordingTracer:
    """Just enough of an OpenTelemetry tracer for GenAITraffic, several times faster than the SDK."""

    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []

    def start_span(self, name: str, context: Any = None, kind: Any = None, attributes: dict[str, Any] | None = None,
                   start_time: int = 0) -> RecordedSpan:
        parent = api.get_current_span(context) if context is not None else None
        return RecordedSpan(name, start_time, dict(attributes or {}),
                            parent if isinstance(parent, RecordedSpan) else None, self.spans)


def _root(span: RecordedSpan) -> RecordedSpan:
    while span.parent is not None:
        span = span.parent
    return span


def traffic_table(seed: int, requests: int, prompt_scale: dict[str, float] | None = None,
                  start_ns: int = 1_790_000_000_000_000_000, spacing_ns: int = 1_000_000_000) -> pa.Table:
    """A span table (sovtel.records.SPAN_SCHEMA) of ``requests`` generated requests, one per ``spacing_ns``."""
    tracer = RecordingTracer()
    gen = GenAITraffic(seed=seed, prompt_scale=prompt_scale)
    for i in range(requests):
        gen.emit(tracer, "new" if i % 3 else "old", now_ns=start_ns + i * spacing_ns)  # type: ignore[arg-type]
    cols: dict[str, list[Any]] = {k: [] for k in (
        "timestamp", "duration_ns", "trace_id", "span_id", "parent_span_id", "span_name", "operation",
        "request_model", "response_model", "input_tokens", "output_tokens", "ttft_s", "finish_reasons",
        "status_code", "input_messages", "output_messages", "tool_call_result", "retrieval_documents")}
    for s in tracer.spans:
        a = s.attributes
        root = _root(s)
        cols["timestamp"].append(s.start)
        cols["duration_ns"].append(max(0, s.end_ns - s.start))
        cols["trace_id"].append(f"{root.span_id:032x}")
        cols["span_id"].append(f"{s.span_id:016x}")
        cols["parent_span_id"].append(f"{s.parent.span_id:016x}" if s.parent else "")
        cols["span_name"].append(s.name)
        cols["operation"].append(str(a.get("gen_ai.operation.name", "")))
        cols["request_model"].append(str(a.get("gen_ai.request.model", "")))
        cols["response_model"].append(str(a.get("gen_ai.response.model", "")))
        cols["input_tokens"].append(int(a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens", 0))))
        cols["output_tokens"].append(int(a.get("gen_ai.usage.output_tokens",
                                               a.get("gen_ai.usage.completion_tokens", 0))))
        ttft = a.get("gen_ai.response.time_to_first_chunk", a.get("gen_ai.server.time_to_first_token"))
        cols["ttft_s"].append(None if ttft is None else float(ttft))
        cols["finish_reasons"].append(list(a.get("gen_ai.response.finish_reasons", ())))
        cols["status_code"].append("ERROR" if s.status_error else "UNSET")
        cols["input_messages"].append(str(a.get("gen_ai.input.messages", a.get("gen_ai.prompt", ""))))
        cols["output_messages"].append(str(a.get("gen_ai.output.messages", a.get("gen_ai.completion", ""))))
        cols["tool_call_result"].append(str(a.get("gen_ai.tool.call.result", "")))
        cols["retrieval_documents"].append(str(a.get("gen_ai.retrieval.documents", "")))
    ts = pa.array(cols.pop("timestamp"), type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    return table_from_columns(Signal.TRACES, {"timestamp": ts, **cols})
