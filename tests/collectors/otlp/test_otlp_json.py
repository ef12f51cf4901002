"""OTLP/JSON parsing: hex ids, enum names or numbers, int64 as strings, unknown fields ignored."""

from __future__ import annotations

import json

import pytest

from collectors.otlp.decode import DecodeError, decode_logs, decode_traces
from collectors.otlp.otlp_json import request_from_json, request_to_json
from sovtel.records import Signal
from tests.collectors.otlp.builders import genai_request, logs_request, metrics_request, otlp_json

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def span_json(**span) -> bytes:
    base = {"traceId": TRACE_ID, "spanId": SPAN_ID, "name": "chat", "kind": 2, "startTimeUnixNano": "5"}
    base.update(span)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [base]}]}]}).encode()


def decoded_span(body: bytes) -> dict:
    msg = request_from_json(Signal.TRACES, body)
    return decode_traces(msg.SerializeToString()).to_pylist()[0]


def test_hex_ids_decode_to_the_same_ids():
    """Hex trace and span ids in JSON come out as the same hex ids."""
    span = decoded_span(span_json(parentSpanId="0102030405060708"))
    assert (span["trace_id"], span["span_id"], span["parent_span_id"]) == (TRACE_ID, SPAN_ID, "0102030405060708")


@pytest.mark.parametrize(
    ("kind", "name"),
    [(2, "SERVER"), ("SPAN_KIND_CLIENT", "CLIENT"), ("3", "CLIENT"), ("SPAN_KIND_FROM_THE_FUTURE", "UNSPECIFIED")],
)
def test_enum_values_as_numbers_or_names(kind, name):
    """Enum fields accept the number or the protobuf name; an unknown name is ignored like an unknown field."""
    assert decoded_span(span_json(kind=kind))["span_kind"] == name


@pytest.mark.parametrize("start", ["1700000000000000000", 1700000000000000000])
def test_int64_as_string_or_number(start):
    """64-bit integers may be JSON strings or numbers."""
    assert decoded_span(span_json(startTimeUnixNano=start))["timestamp"].value == 1700000000000000000


def test_unknown_fields_are_ignored():
    """Fields the schema does not know are ignored, as the OTLP/JSON spec requires."""
    span = decoded_span(span_json(futureField={"x": 1}, droppedLinksCount=2))
    assert span["span_name"] == "chat"


def test_original_field_names_are_accepted():
    """snake_case protobuf field names work as well as lowerCamelCase."""
    body = json.dumps(
        {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": TRACE_ID, "span_id": SPAN_ID, "name": "n"}]}]}]}
    ).encode()
    assert decoded_span(body)["trace_id"] == TRACE_ID


def test_attribute_values_of_every_type():
    """AnyValue JSON forms (string, bool, int as string, double, bytes base64, array, kvlist) all decode."""
    attrs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "i", "value": {"intValue": "12"}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "y", "value": {"bytesValue": "AP8="}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "p"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "33"}},
    ]
    span = decoded_span(span_json(attributes=attrs))
    assert dict(span["span_attributes"]) == {
        "s": "x",
        "b": "true",
        "i": "12",
        "d": "1.5",
        "y": "00ff",
        "a": '["p"]',
        "m": '{"k":1}',
    }
    assert span["input_tokens"] == 33


@pytest.mark.parametrize(
    ("message", "signal"),
    [(genai_request(3), Signal.TRACES), (logs_request(2), Signal.LOGS), (metrics_request(2), Signal.METRICS)],
)
def test_json_of_a_request_parses_back_to_the_same_request(message, signal):
    """OTLP/JSON built from a protobuf request parses back to an equal request."""
    assert request_from_json(signal, json.dumps(otlp_json(message)).encode()) == message


def test_request_to_json_writes_hex_ids():
    """request_to_json (for tools) writes OTLP/JSON with hex ids that parse back."""
    req = genai_request(2)
    data = request_to_json(req)
    assert (
        data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        == req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    )
    assert request_from_json(Signal.TRACES, json.dumps(data).encode()) == req


def test_logs_with_trace_context():
    """Log records in JSON carry hex trace context through."""
    body = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {"logRecords": [{"traceId": TRACE_ID, "spanId": SPAN_ID, "body": {"stringValue": "b"}}]}
                    ]
                }
            ]
        }
    ).encode()
    table = decode_logs(request_from_json(Signal.LOGS, body).SerializeToString(), received_ns=1)
    assert table.to_pylist()[0]["trace_id"] == TRACE_ID


BAD_JSON = [
    ("not json", b"{nope", "not valid JSON"),
    ("array at top", b"[1, 2]", "must be a JSON object"),
    ("string at top", b'"x"', "must be a JSON object"),
    ("invalid utf-8", b'{"resourceSpans": "\xff"}', "not valid UTF-8"),
    ("spans not a list", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}).encode(), "OTLP/JSON"),
    ("name not a string", span_json(name=5), "OTLP/JSON"),
    ("time a float", span_json(startTimeUnixNano=1.5), "OTLP/JSON"),
    ("trace id not hex", span_json(traceId="zz" * 16), "spans[0].traceId"),
    ("trace id a number", span_json(traceId=12), "spans[0].traceId: must be a hex string"),
    ("odd-length hex", span_json(spanId="abc"), "spans[0].spanId"),
    ("short trace id", span_json(traceId="abcd"), "traceId: must be 16 bytes"),
    ("deeply nested array", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("deeply nested value", None, "nested too deeply"),
]


def _deep_value(depth: int) -> bytes:
    # Built as text: json.dumps itself cannot write something this deep.
    value = '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth + '{"stringValue": "leaf"}' + "}]}}" * depth
    span = f'{{"traceId": "{TRACE_ID}", "spanId": "{SPAN_ID}", "attributes": [{{"key": "deep", "value": {value}}}]}}'
    return f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}]}}]}}]}}'.encode()


@pytest.mark.parametrize(("case", "body", "message"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_json_is_a_decode_error_saying_what_and_where(case, body, message):
    """Malformed OTLP/JSON raises DecodeError whose message says what is wrong and where."""
    if body is None:
        body = _deep_value(3000)
    with pytest.raises(DecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_traces(request_from_json(Signal.TRACES, body).SerializeToString())
