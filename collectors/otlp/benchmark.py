"""Decode throughput on one core: ``python -m collectors.otlp.benchmark [--spans N] [--repeat R] [--events E]``.

Builds a realistic GenAI trace request (12 attributes per span, as an instrumented inference server
sends them) and reports spans per CPU-second, decoded as receivers do (``decode_request``: partial
success, limits, times checked), for the columnar path, the exact per-object path and the same
request as OTLP/JSON; then the same request with one unreadable span (kept good spans, one
rejected), and the CPU time of one span with ``E`` events (capped at 128).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from collectors.otlp.decode import decode_request
from collectors.otlp.otlp_json import decode_json_request, request_to_json
from sovtel.records import Signal

MODELS = ("llama-3.1-8b-instruct", "mistral-7b-instruct", "qwen2.5-14b")


def _kv(span_attrs: object, key: str) -> KeyValue:
    kv: KeyValue = span_attrs.add()  # type: ignore[attr-defined]
    kv.key = key
    return kv


def genai_request(spans: int, seed: int = 1) -> ExportTraceServiceRequest:
    """One export request of ``spans`` chat spans with 12 attributes each."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", "vllm"), ("host.name", "gpu-node-1"), ("sovtel.tenant", "acme")):
        _kv(rs.resource.attributes, key).value.string_value = value
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.vllm"
    for i in range(spans):
        sp = ss.spans.add()
        sp.trace_id = rnd.randbytes(16)
        sp.span_id = rnd.randbytes(8)
        if i % 3:
            sp.parent_span_id = rnd.randbytes(8)
        model = MODELS[i % len(MODELS)]
        sp.name = f"chat {model}"
        sp.kind = 3
        sp.start_time_unix_nano = 1_700_000_000_000_000_000 + i * 1000
        sp.end_time_unix_nano = sp.start_time_unix_nano + rnd.randint(10**6, 10**9)
        if i % 20 == 0:
            sp.status.code = 2
            sp.status.message = "upstream timeout"
        a = sp.attributes
        _kv(a, "gen_ai.operation.name").value.string_value = "chat"
        _kv(a, "gen_ai.provider.name").value.string_value = "vllm"
        _kv(a, "gen_ai.request.model").value.string_value = model
        _kv(a, "gen_ai.response.model").value.string_value = model
        _kv(a, "gen_ai.usage.input_tokens").value.int_value = rnd.randint(10, 4000)
        _kv(a, "gen_ai.usage.output_tokens").value.int_value = rnd.randint(1, 1000)
        _kv(a, "gen_ai.request.temperature").value.double_value = 0.7
        _kv(a, "gen_ai.response.time_to_first_chunk").value.double_value = rnd.random()
        _kv(a, "gen_ai.response.finish_reasons").value.array_value.values.add().string_value = "stop"
        _kv(a, "server.address").value.string_value = "10.0.0.7"
        _kv(a, "server.port").value.int_value = 8000
        _kv(a, "user.id").value.string_value = f"user-{rnd.randint(1, 1000)}"
    return req


def spans_per_cpu_second(decode: Callable[[bytes], object], payload: bytes, spans: int, repeat: int) -> float:
    """Best of ``repeat`` runs, in CPU time of this process (robust to other load on the machine)."""
    decode(payload)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        decode(payload)
        best = min(best, time.process_time() - start)
    return spans / best


def unreadable_payload(spans: int) -> bytes:
    """The benchmark request with one span name that is not valid UTF-8."""
    req = genai_request(spans)
    middle = req.resource_spans[0].scope_spans[0].spans[spans // 2]
    middle.name = "BAD-NAME"
    payload: bytes = req.SerializeToString()
    return payload.replace(b"BAD-NAME", b"BAD-\xff\xfeME", 1)


def huge_span(events: int) -> bytes:
    """One span with ``events`` events of one attribute each."""
    req = genai_request(1)
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    for i in range(events):
        ev = sp.events.add()
        ev.name = "token"
        ev.time_unix_nano = sp.start_time_unix_nano + i
        _kv(ev.attributes, "index").value.int_value = i
    payload: bytes = req.SerializeToString()
    return payload


def cpu_seconds(decode: Callable[[], object]) -> float:
    """CPU time of one call."""
    start = time.process_time()
    decode()
    return time.process_time() - start


def main() -> None:
    """Print decode throughput."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--events", type=int, default=300_000, help="events of the one huge span (0: skip)")
    args = parser.parse_args()
    payload = genai_request(args.spans).SerializeToString()
    fast = spans_per_cpu_second(lambda p: decode_request(Signal.TRACES, p), payload, args.spans, args.repeat)
    few = max(args.repeat // 4, 3)
    exact = spans_per_cpu_second(lambda p: decode_request(Signal.TRACES, p, exact=True), payload, args.spans, few)
    body = json.dumps(request_to_json(genai_request(args.spans))).encode()
    from_json = spans_per_cpu_second(lambda b: decode_json_request(Signal.TRACES, b), body, args.spans, few)
    partial = spans_per_cpu_second(
        lambda p: decode_request(Signal.TRACES, p), unreadable_payload(args.spans), args.spans, few
    )
    print(f"request: {args.spans} spans, 12 attributes each, {len(payload) / 1e6:.2f} MB")
    print(f"columnar decode: {fast:,.0f} spans/s (one core)")
    print(f"exact decode:    {exact:,.0f} spans/s (one core)")
    print(f"OTLP/JSON decode: {from_json:,.0f} spans/s (one core, {len(body) / 1e6:.2f} MB)")
    print(f"one unreadable span (partial success): {partial:,.0f} spans/s (one core)")
    if args.events:
        huge = huge_span(args.events)
        decoded = decode_request(Signal.TRACES, huge)
        seconds = cpu_seconds(lambda: decode_request(Signal.TRACES, huge))
        kept = len(decoded.table["event_names"][0])
        print(f"one span of {args.events:,} events ({len(huge) / 1e6:.1f} MB): {seconds:.2f} CPU s, {kept} events kept")


if __name__ == "__main__":
    main()
