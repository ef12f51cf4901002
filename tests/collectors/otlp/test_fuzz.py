"""Property tests: decoders never fail except with DecodeError, and both decode paths always agree."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors import semconv
from collectors.otlp.decode import DecodeError, decode_logs, decode_message, decode_metrics, decode_traces
from collectors.otlp.otlp_json import decode_json, request_from_json
from sovtel.records import Signal
from tests.collectors.otlp.builders import add_attributes, genai_request, logs_request, metrics_request, otlp_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn: Any, payload: bytes, **kw: Any) -> pa.Table | str:
    """The decoded table, or 'DecodeError'; anything else propagates and fails the test."""
    try:
        return fn(payload, **kw)
    except DecodeError:
        return "DecodeError"


def same(a: pa.Table | str, b: pa.Table | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.equals(b)


def check_trace_paths(payload: bytes) -> None:
    fast = outcome(decode_traces, payload)
    exact = outcome(decode_traces, payload, exact=True)
    assert same(fast, exact)


def check_log_paths(payload: bytes) -> None:
    fast = outcome(decode_logs, payload, received_ns=1)
    exact = outcome(decode_logs, payload, exact=True, received_ns=1)
    assert same(fast, exact)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_decode_error(payload):
    """Arbitrary bytes either decode or raise DecodeError, for every signal and on both paths alike."""
    check_trace_paths(payload)
    check_log_paths(payload)
    outcome(decode_metrics, payload)


_SEEDS = [
    genai_request(3).SerializeToString(),
    logs_request(3).SerializeToString(),
    metrics_request(2).SerializeToString(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with a few bytes flipped, cut, or inserted."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[i]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_requests_decode_alike_on_both_paths_or_fail_cleanly(payload):
    """Corrupted requests give the same table on both paths, or DecodeError on both."""
    check_trace_paths(payload)
    check_log_paths(payload)
    outcome(decode_metrics, payload)


# Inputs the fuzzers once found to break a decoder, kept as regression cases.
FOUND = [
    # A key length pointing far past the end of its record (read out of bounds in the fast path).
    b"\n\xc3\x01\n\x1c\n\x1a\n\x0cservice.name\x12\n\n\x08chat-api\x12\xa2\x01\x124\t\x00\x00*6\xfe\x9c\x97"
    b"\x17\x10\t\x1a\x04INFO*\x07\n\x05log 02\x0f\n\x07user.id\x12\x04\n\x02u02\x07\n\x01n\x12\x02\x18\x00\x124"
    b"\t\x01\x00*6\xfe\x9c\x97\x17\x10\t\x1a\x04INFO*\x07\n\x05log 12\x0f\niuser.id\x12\x04\n\x02u12\x07\n\x01n"
    b"\x12\x02\x18\x01\x124\t\x02\x00*6\xfe\x9c\x97\x17\x10\t\x1a\x04INFO*\x07\n\x05log 22\x0f\n\x07user.id"
    b"\x12\x04\n\x02u22\x07\n\x01n\x12\x02\x18\x02",
]


@pytest.mark.parametrize("payload", FOUND)
def test_inputs_found_by_fuzzing(payload):
    """Inputs that once broke a decoder now decode alike on both paths or fail with DecodeError."""
    check_trace_paths(payload)
    check_log_paths(payload)
    outcome(decode_metrics, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
_OTLP_KEYS = [
    "resourceSpans", "scopeSpans", "spans", "resource", "attributes", "key", "value", "stringValue", "intValue",
    "arrayValue", "kvlistValue", "values", "traceId", "spanId", "parentSpanId", "name", "kind", "status", "code",
    "startTimeUnixNano", "events", "links", "resourceLogs", "scopeLogs", "logRecords", "body", "resourceMetrics",
    "scopeMetrics", "metrics", "gauge", "sum", "dataPoints", "asDouble", "exemplars",
]  # fmt: skip
otlp_shaped = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_OTLP_KEYS), inner, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(st.one_of(json_values, otlp_shaped), st.sampled_from(list(Signal)))
def test_random_json_never_raises_anything_but_decode_error(value, signal):
    """Arbitrary JSON, including OTLP-shaped JSON with wrong types, parses or raises DecodeError."""
    body = json.dumps(value).encode()
    try:
        message = request_from_json(signal, body)
    except DecodeError:
        return
    decoder = {Signal.TRACES: decode_traces, Signal.LOGS: decode_logs, Signal.METRICS: decode_metrics}[signal]
    outcome(decoder, message.SerializeToString())


def _through_the_message(signal: Signal, body: bytes) -> pa.Table | str:
    """The slower JSON route (protobuf's JSON mapping, then the exact decoder), or 'DecodeError'."""
    try:
        return decode_message(signal, request_from_json(signal, body), received_ns=1)
    except DecodeError:
        return "DecodeError"


@FUZZ
@given(st.one_of(json_values, otlp_shaped), st.sampled_from(list(Signal)))
def test_random_json_decodes_alike_straight_to_columns_or_through_the_message(value, signal):
    """Arbitrary JSON decodes to the same table (or DecodeError) by both JSON routes."""
    body = json.dumps(value).encode()
    direct = outcome(lambda b: decode_json(signal, b, received_ns=1), body)
    assert same(direct, _through_the_message(signal, body))


# ------------------------------------------------------------------------- valid messages

keys = st.sampled_from([*semconv.SPAN_ATTRIBUTES, *semconv.EVENT_ATTRIBUTES, "x", "server.port", ""]) | st.text(
    max_size=12
)
scalars = (
    st.text(max_size=30)
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
attribute_sets = st.dictionaries(keys, values, max_size=8)


@st.composite
def trace_requests(draw: st.DrawFn) -> tuple[ExportTraceServiceRequest, int]:
    """A valid trace request of random shape, and how many spans it holds."""
    req = ExportTraceServiceRequest()
    total = 0
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        add_attributes(rs.resource.attributes, draw(st.dictionaries(keys, scalars, max_size=4)))
        for _ in range(draw(st.integers(0, 3))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                sp = ss.spans.add()
                sp.trace_id = draw(st.binary(min_size=16, max_size=16))
                sp.span_id = draw(st.binary(min_size=8, max_size=8))
                sp.parent_span_id = draw(st.sampled_from([b"", b"\x01" * 8]))
                sp.name = draw(st.text(max_size=20))
                sp.kind = draw(st.integers(0, 5))
                sp.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                sp.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                sp.status.code = draw(st.integers(0, 2))
                sp.status.message = draw(st.text(max_size=10))
                add_attributes(sp.attributes, draw(attribute_sets))
                for _ in range(draw(st.integers(0, 2))):
                    ev = sp.events.add()
                    ev.name = draw(st.text(max_size=10))
                    add_attributes(ev.attributes, draw(attribute_sets))
                total += 1
    return req, total


@MESSAGES
@given(trace_requests())
def test_valid_requests_keep_every_span_and_both_paths_agree(generated):
    """Every span of a valid request becomes one row, with identical tables from both paths."""
    req, total = generated
    payload = req.SerializeToString()
    fast = decode_traces(payload)
    assert fast.num_rows == total
    assert fast.equals(decode_traces(payload, exact=True))
    assert sorted(fast["trace_id"].to_pylist()) == sorted(
        s.trace_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
    )


@MESSAGES
@given(trace_requests())
def test_json_and_protobuf_of_a_request_decode_alike(generated):
    """The OTLP/JSON form of a valid request decodes to the same table as its protobuf form."""
    req, _total = generated
    from_json = request_from_json(Signal.TRACES, json.dumps(otlp_json(req)).encode())
    assert decode_traces(from_json.SerializeToString()).equals(decode_traces(req.SerializeToString()))


@MESSAGES
@given(trace_requests())
def test_json_straight_to_columns_matches_protobuf(generated):
    """decode_json of a valid request's OTLP/JSON gives the table its protobuf form gives."""
    req, _total = generated
    body = json.dumps(otlp_json(req)).encode()
    assert decode_json(Signal.TRACES, body).equals(decode_traces(req.SerializeToString()))
