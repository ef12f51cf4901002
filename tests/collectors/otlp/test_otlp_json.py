"""OTLP/JSON parsing: hex ids, enum names or numbers, int64 as strings, unknown fields ignored."""

from __future__ import annotations

import json

import pytest

from collectors.otlp.decode import DecodeError, decode_logs, decode_message, decode_traces
from collectors.otlp.json_columns import logs_from_json, spans_from_json
from collectors.otlp.otlp_json import decode_json, request_from_json, request_to_json
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


def _both_routes(signal: Signal, body: bytes) -> tuple[object, object]:
    """The table (or DecodeError text) straight from JSON to columns and through the protobuf message."""

    def run(fn):
        try:
            return fn().to_pylist()
        except DecodeError as exc:
            return f"DecodeError: {exc}"

    direct = run(lambda: decode_json(signal, body, received_ns=1))
    via_message = run(lambda: decode_message(signal, request_from_json(signal, body), received_ns=1))
    return direct, via_message


SPAN_VARIANTS = {
    "kind as a name": {"kind": "SPAN_KIND_CLIENT"},
    "kind unknown": {"kind": 9},
    "kind a bool": {"kind": True},
    "time as a number": {"startTimeUnixNano": 7, "endTimeUnixNano": 2**64 - 1},
    "time negative": {"startTimeUnixNano": "-1"},
    "time too large": {"startTimeUnixNano": str(2**64)},
    "time with a plus sign": {"startTimeUnixNano": "+5"},
    "time a float": {"startTimeUnixNano": 1.0},
    "upper-case hex ids": {"traceId": TRACE_ID.upper(), "parentSpanId": SPAN_ID.upper()},
    "no parent": {"parentSpanId": ""},
    "no trace id": {"traceId": ""},
    "status by name": {"status": {"code": "STATUS_CODE_ERROR", "message": "boom"}},
    "status code unknown": {"status": {"code": 7}},
    "status null": {"status": None},
    "name null": {"name": None},
    "snake-case field": {"start_time_unix_nano": "5"},
    "unknown field": {"somethingNew": 1},
    "trace state": {"traceState": "k=v"},
    "flags and counts": {"flags": 257, "droppedAttributesCount": 2, "droppedEventsCount": "3"},
    "a link": {"links": [{"traceId": TRACE_ID, "spanId": SPAN_ID}]},
    "an event": {"events": [{"name": "e", "attributes": [{"key": "k", "value": {"intValue": 3}}]}]},
    "int as a number": {"attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}}]},
    "int not digits": {"attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12a"}}]},
    "int out of range": {"attributes": [{"key": "k", "value": {"intValue": str(2**63)}}]},
    "double as an int": {"attributes": [{"key": "gen_ai.request.temperature", "value": {"doubleValue": 1}}]},
    "double as text": {"attributes": [{"key": "k", "value": {"doubleValue": "NaN"}}]},
    "bool as text": {"attributes": [{"key": "k", "value": {"boolValue": "true"}}]},
    "string a number": {"attributes": [{"key": "k", "value": {"stringValue": 5}}]},
    "two members in a value": {"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": "1"}}]},
    "empty value": {"attributes": [{"key": "k", "value": {}}]},
    "no value": {"attributes": [{"key": "k"}]},
    "no key": {"attributes": [{"value": {"stringValue": "v"}}]},
    "array, map and bytes": {"attributes": [
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "2"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "i", "value": {"boolValue": False}}]}}},
        {"key": "b", "value": {"bytesValue": "AQI="}},
    ]},
    "attributes not a list": {"attributes": {"key": "k"}},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SPAN_VARIANTS))
def test_json_straight_to_columns_agrees_with_the_protobuf_mapping(case):
    """Every span shape decodes to the same table, or the same error, by both JSON routes."""
    direct, via_message = _both_routes(Signal.TRACES, span_json(**SPAN_VARIANTS[case]))
    assert direct == via_message


LOG_VARIANTS = {
    "severity by name": {"severityNumber": "SEVERITY_NUMBER_WARN", "severityText": "WARN"},
    "severity unknown": {"severityNumber": 99},
    "map body": {"body": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
    "no body": {},
    "trace context": {"traceId": TRACE_ID, "spanId": SPAN_ID, "eventName": "gen_ai.client.inference"},
    "short span id": {"spanId": "abcd"},
    "times": {"timeUnixNano": "5", "observedTimeUnixNano": 6},
    "schema url a number": None,
}


@pytest.mark.parametrize("case", sorted(LOG_VARIANTS))
def test_json_logs_straight_to_columns_agree_with_the_protobuf_mapping(case):
    """Every log record shape decodes to the same table, or the same error, by both JSON routes."""
    record = LOG_VARIANTS[case]
    scope: dict = {"logRecords": [record or {}]}
    if record is None:
        scope["schemaUrl"] = 5
    body = json.dumps({"resourceLogs": [{"resource": {}, "scopeLogs": [scope]}]}).encode()
    direct, via_message = _both_routes(Signal.LOGS, body)
    assert direct == via_message


@pytest.mark.parametrize(
    ("message", "signal"), [(genai_request(3), Signal.TRACES), (logs_request(2), Signal.LOGS)]
)
def test_sdk_shaped_json_goes_straight_to_columns(message, signal):
    """OTLP/JSON as SDKs write it never needs the protobuf message."""
    root = json.loads(json.dumps(otlp_json(message)))
    (spans_from_json if signal is Signal.TRACES else logs_from_json)(root)  # raises JsonIrregular otherwise


ARRAYS = {
    "strings": {"values": [{"stringValue": "stop"}, {"stringValue": "length"}]},
    "mixed scalars": {"values": [{"intValue": "3"}, {"doubleValue": 0.5}, {"boolValue": True}, {}]},
    "empty": {},
    "nested": {"values": [{"arrayValue": {"values": [{"stringValue": "x"}]}}]},
    "bad element": {"values": [{"intValue": "x"}]},
    "not a list": {"values": {"stringValue": "x"}},
    "unknown field": {"values": [], "other": 1},
}


@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_array_values_decode_alike_by_both_json_routes(case):
    """Array attribute values, built directly or through protobuf's mapping, give the same table or error."""
    attrs = [{"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": ARRAYS[case]}}]
    direct, via_message = _both_routes(Signal.TRACES, span_json(attributes=attrs))
    assert direct == via_message
