"""Builders for OTLP requests and OTLP/JSON (made independently of the code under test), and counter reads."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sovtel.telemetry import Telemetry

SMALL_LIMIT = 256 * 1024


def set_value(v: AnyValue, value: Any) -> None:
    """Fill an AnyValue from a Python value (str, bool, int, float, bytes, list, dict)."""
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.SetInParent()
        for item in value:
            set_value(v.array_value.values.add(), item)
    elif isinstance(value, dict):
        v.kvlist_value.SetInParent()
        for k, item in value.items():
            kv = v.kvlist_value.values.add()
            kv.key = k
            set_value(kv.value, item)
    else:
        raise TypeError(type(value))


def add_attributes(target: Any, attributes: dict[str, Any]) -> None:
    """Append key-values to a repeated KeyValue field."""
    for k, value in attributes.items():
        kv: KeyValue = target.add()
        kv.key = k
        set_value(kv.value, value)


def genai_request(
    n_spans: int = 3,
    seed: int = 7,
    resource: dict[str, Any] | None = None,
    span_attributes: Callable[[int], dict[str, Any]] | None = None,
) -> ExportTraceServiceRequest:
    """A trace export request of GenAI chat spans."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    add_attributes(
        rs.resource.attributes,
        resource
        if resource is not None
        else {"service.name": "chat-api", "host.name": "gpu-1", "sovtel.tenant": "acme"},
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for i in range(n_spans):
        sp = ss.spans.add()
        sp.trace_id = rnd.randbytes(16)
        sp.span_id = rnd.randbytes(8)
        if i:
            sp.parent_span_id = rnd.randbytes(8)
        sp.name = f"chat model-{i % 2}"
        sp.kind = 3
        sp.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1_000_000
        attrs = (
            span_attributes(i)
            if span_attributes
            else {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "vllm",
                "gen_ai.request.model": "llama",
                "gen_ai.usage.input_tokens": 10 + i,
                "gen_ai.usage.output_tokens": 20 + i,
                "gen_ai.response.finish_reasons": ["stop"],
                "server.port": 8000,
            }
        )
        add_attributes(sp.attributes, attrs)
    return req


def logs_request(n: int = 2) -> ExportLogsServiceRequest:
    """A logs export request."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    add_attributes(rl.resource.attributes, {"service.name": "chat-api"})
    sl = rl.scope_logs.add()
    for i in range(n):
        rec = sl.log_records.add()
        rec.time_unix_nano = 1_700_000_000_000_000_000 + i
        rec.severity_number = 9
        rec.severity_text = "INFO"
        rec.body.string_value = f"log {i}"
        add_attributes(rec.attributes, {"user.id": f"u{i}", "n": i})
    return req


def metrics_request(n: int = 2) -> ExportMetricsServiceRequest:
    """A metrics export request with one gauge of ``n`` points."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    add_attributes(rm.resource.attributes, {"service.name": "chat-api"})
    m = rm.scope_metrics.add().metrics.add()
    m.name = "gpu.utilization"
    m.unit = "1"
    for i in range(n):
        p = m.gauge.data_points.add()
        p.time_unix_nano = 1_700_000_000_000_000_000 + i
        p.as_double = 0.5
        add_attributes(p.attributes, {"gpu": i})
    return req


_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(obj: Any) -> None:
    # OTLP/JSON writes trace and span ids as hex where protobuf's JSON mapping writes base64; every
    # object holding such keys in an OTLP request is a span, link, log record or exemplar.
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _ID_KEYS and isinstance(value, str):
                obj[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(obj, list):
        for item in obj:
            _hex_ids(item)


def otlp_json(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of a request, built here independently of the code under test."""
    data: dict[str, Any] = json_format.MessageToDict(message)
    _hex_ids(data)
    return data


def refused(telemetry: Telemetry, reason: str, component: str = "otlp") -> float:
    """How many requests the component refused for ``reason``."""
    return telemetry.total("sovtel_refused_requests_total", component=component, reason=reason)


def received(telemetry: Telemetry, signal: str, component: str = "otlp") -> float:
    """How many records the component received for ``signal``."""
    return telemetry.total("sovtel_received_records_total", component=component, signal=signal)


def emit_spans(exporter: Any, n: int = 40, old_names: bool = False) -> list[Any]:
    """Send ``n`` GenAI spans through ``exporter`` with the real SDK; returns the spans as the SDK saw them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-api", "host.name": "gpu-1"}))
    # A queue larger than the burst: the SDK's default drops spans in a tight loop.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4096, schedule_delay_millis=50))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("sovtel-tests")
    provider_key = "gen_ai.system" if old_names else "gen_ai.provider.name"
    input_key = "gen_ai.usage.prompt_tokens" if old_names else "gen_ai.usage.input_tokens"
    output_key = "gen_ai.usage.completion_tokens" if old_names else "gen_ai.usage.output_tokens"
    for i in range(n):
        attributes = {
            "gen_ai.operation.name": "chat",
            provider_key: "vllm",
            "gen_ai.request.model": "llama-3",
            input_key: 100 + i,
            output_key: i,
            "gen_ai.response.finish_reasons": ["stop"],
            "user.id": f"user-{i % 3}",
        }
        with tracer.start_as_current_span("chat llama-3", kind=SpanKind.CLIENT, attributes=attributes):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def trace_ids(spans: list[Any]) -> list[str]:
    """Sorted hex trace ids of SDK spans."""
    return sorted(format(s.context.trace_id, "032x") for s in spans)


def token_sum(spans: list[Any], key: str) -> int:
    """Sum of an integer attribute over SDK spans."""
    return sum(int(s.attributes[key]) for s in spans)
