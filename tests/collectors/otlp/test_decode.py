"""Columnar decode of OTLP export requests into the record schemas."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.otlp import wire
from collectors.otlp.decode import DecodeError, decode, decode_logs, decode_metrics, decode_traces
from collectors.otlp.span_columns import spans_from_wire
from sovtel.records import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, Signal
from tests.collectors.otlp import wireformat as wf
from tests.collectors.otlp.builders import (
    add_attributes,
    emit_spans,
    genai_request,
    logs_request,
    metrics_request,
    set_value,
)


def one_span(attributes: dict | None = None, **fields) -> pa.Table:
    req = genai_request(1, span_attributes=lambda _i: attributes or {})
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    for k, v in fields.items():
        setattr(sp, k, v)
    return decode_traces(req.SerializeToString())


def row(table: pa.Table, i: int = 0) -> dict:
    return table.slice(i, 1).to_pylist()[0]


def both_paths(payload: bytes) -> pa.Table:
    """Decode with the fast and the exact path, assert they agree, return the table."""
    fast = decode_traces(payload)
    exact = decode_traces(payload, exact=True)
    assert fast.equals(exact), (fast.to_pylist(), exact.to_pylist())
    return fast


class TestSpans:
    def test_schema_is_exactly_the_span_schema(self):
        """A decoded trace request has exactly SPAN_SCHEMA, column for column."""
        table = decode_traces(genai_request(4).SerializeToString())
        assert table.schema.equals(SPAN_SCHEMA)
        assert table.num_rows == 4

    def test_empty_request_gives_empty_table(self):
        """An export request without spans decodes to zero rows of the schema."""
        table = decode_traces(ExportTraceServiceRequest().SerializeToString())
        assert table.num_rows == 0 and table.schema.equals(SPAN_SCHEMA)

    def test_ids_are_lower_case_hex_and_root_has_no_parent(self):
        """Trace, span and parent ids are lower-case hex; a root span's parent is empty."""
        req = genai_request(2)
        spans = req.resource_spans[0].scope_spans[0].spans
        table = decode_traces(req.SerializeToString())
        assert table["trace_id"].to_pylist() == [s.trace_id.hex() for s in spans]
        assert table["span_id"].to_pylist() == [s.span_id.hex() for s in spans]
        assert table["parent_span_id"].to_pylist() == ["", spans[1].parent_span_id.hex()]

    @pytest.mark.parametrize(
        ("start", "end", "duration"),
        [(10, 25, 15), (10, 10, 0), (25, 10, 0), (2**64 - 1, 2**64 - 1, 0)],
    )
    def test_timestamp_and_duration(self, start, end, duration):
        """The start is the timestamp, the duration is end minus start and never negative."""
        r = row(one_span(start_time_unix_nano=start, end_time_unix_nano=end))
        assert r["duration_ns"] == duration
        assert r["timestamp"].value == min(start, 2**63 - 1)

    @pytest.mark.parametrize(
        ("kind", "name"),
        [
            (0, "UNSPECIFIED"),
            (1, "INTERNAL"),
            (2, "SERVER"),
            (3, "CLIENT"),
            (4, "PRODUCER"),
            (5, "CONSUMER"),
            (9, "UNSPECIFIED"),
        ],
    )
    def test_span_kind_names(self, kind, name):
        """Span kinds become their names; a value from a newer protocol reads as UNSPECIFIED."""
        assert row(one_span(kind=kind))["span_kind"] == name

    @pytest.mark.parametrize(("code", "name"), [(0, "UNSET"), (1, "OK"), (2, "ERROR"), (7, "UNSET")])
    def test_status_names_and_message(self, code, name):
        """Status codes become their names and the status message is kept."""
        req = genai_request(1)
        sp = req.resource_spans[0].scope_spans[0].spans[0]
        sp.status.code = code
        sp.status.message = "boom"
        r = row(decode_traces(req.SerializeToString()))
        assert (r["status_code"], r["status_message"]) == (name, "boom")

    @pytest.mark.parametrize(
        ("resource", "expected"),
        [
            (
                {"service.name": "a", "host.name": "h", "sovtel.tenant": "t", "sovtel.tier": "local"},
                ("a", "h", "t", "local"),
            ),
            ({"service.name": "a", "k8s.node.name": "n", "tenant.id": "t2"}, ("a", "n", "t2", "")),
            ({"host.name": "h", "k8s.node.name": "n", "sovtel.tenant": "t", "tenant.id": "x"}, ("", "h", "t", "")),
            ({}, ("", "", "", "")),
        ],
    )
    def test_resource_columns(self, resource, expected):
        """Resource attributes fill service, node, tenant and tier, preferring the specific names."""
        req = genai_request(2, resource=resource)
        table = decode_traces(req.SerializeToString())
        for i in range(2):
            r = row(table, i)
            assert (r["service_name"], r["node"], r["tenant_id"], r["tier"]) == expected
            assert r["resource_attributes"] == []

    def test_other_resource_attributes_stay_in_the_map(self):
        """Resource attributes without a typed column stay in resource_attributes."""
        req = genai_request(1, resource={"service.name": "a", "cloud.region": "eu-west-1"})
        assert row(decode_traces(req.SerializeToString()))["resource_attributes"] == [("cloud.region", "eu-west-1")]

    def test_span_tenant_overrides_the_resource_tenant(self):
        """A tenant on the span wins over the resource's; spans without one keep the resource's."""
        req = genai_request(2, span_attributes=lambda i: {"sovtel.tenant": "span-tenant"} if i == 0 else {})
        table = decode_traces(req.SerializeToString())
        assert table["tenant_id"].to_pylist() == ["span-tenant", "acme"]

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            ("plain", "plain"),
            (True, "true"),
            (False, "false"),
            (42, "42"),
            (-7, "-7"),
            (2**63 - 1, str(2**63 - 1)),
            (0.5, "0.5"),
            (1e20, "1e+20"),
            (b"\x00\xff", "00ff"),
            (["a", 1, True], '["a",1,true]'),
            ({"k": "v", "n": [1.5]}, '{"k":"v","n":[1.5]}'),
            ("ünïcødé ✓", "ünïcødé ✓"),
        ],
    )
    def test_attribute_values_become_text(self, value, text):
        """Attribute values become strings: bools lower-case, numbers in decimal, arrays and maps as JSON, bytes hex."""
        assert row(one_span({"x": value}))["span_attributes"] == [("x", text)]

    def test_typed_keys_leave_the_attribute_map(self):
        """Keys that fill typed columns are removed from span_attributes; the others stay."""
        r = row(decode_traces(genai_request(1).SerializeToString()))
        assert r["span_attributes"] == [("server.port", "8000")]
        assert (r["operation"], r["provider"], r["request_model"]) == ("chat", "vllm", "llama")
        assert (r["input_tokens"], r["output_tokens"], r["finish_reasons"]) == (10, 20, ["stop"])

    def test_missing_values_are_empty_zero_or_null(self):
        """Absent GenAI attributes read as empty strings, zero counts, an empty list and a null TTFT."""
        r = row(one_span({}))
        assert (r["operation"], r["user_id"], r["error_type"], r["input_messages"]) == ("", "", "", "")
        assert (r["input_tokens"], r["reasoning_tokens"], r["pii_count"]) == (0, 0, 0)
        assert r["ttft_s"] is None and r["finish_reasons"] == [] and r["event_names"] == []

    def test_duplicate_key_last_one_wins(self):
        """If a span repeats a typed key, the last occurrence fills the column."""
        req = genai_request(1, span_attributes=lambda _i: {})
        sp = req.resource_spans[0].scope_spans[0].spans[0]
        add_attributes(sp.attributes, {"gen_ai.request.model": "first"})
        add_attributes(sp.attributes, {"gen_ai.request.model": "second"})
        assert row(both_paths(req.SerializeToString()))["request_model"] == "second"

    def test_events_become_names_and_attribute_maps(self):
        """Span events become event_names and one attribute map per event."""
        req = genai_request(2, span_attributes=lambda _i: {})
        sp = req.resource_spans[0].scope_spans[0].spans[1]
        ev = sp.events.add()
        ev.name = "exception"
        add_attributes(ev.attributes, {"exception.type": "ValueError", "exception.escaped": False})
        sp.events.add().name = "retry"
        table = both_paths(req.SerializeToString())
        assert table["event_names"].to_pylist() == [[], ["exception", "retry"]]
        assert table["event_attributes"].to_pylist() == [
            [],
            [[("exception.type", "ValueError"), ("exception.escaped", "false")], []],
        ]

    @pytest.mark.parametrize(
        ("event", "key", "column"),
        [
            ("gen_ai.content.prompt", "gen_ai.prompt", "input_messages"),
            ("gen_ai.content.completion", "gen_ai.completion", "output_messages"),
            ("gen_ai.client.inference.operation.details", "gen_ai.input.messages", "input_messages"),
            ("gen_ai.client.inference.operation.details", "gen_ai.system_instructions", "system_instructions"),
        ],
    )
    def test_content_on_events_fills_content_columns(self, event, key, column):
        """Content carried on span events fills the content column and leaves the event's map."""
        req = genai_request(1, span_attributes=lambda _i: {})
        ev = req.resource_spans[0].scope_spans[0].spans[0].events.add()
        ev.name = event
        add_attributes(ev.attributes, {key: '[{"role":"user","content":"hi"}]', "other": "x"})
        r = row(both_paths(req.SerializeToString()))
        assert r[column] == '[{"role":"user","content":"hi"}]'
        assert r["event_names"] == [event]
        assert r["event_attributes"] == [[("other", "x")]]

    def test_span_content_wins_over_event_content(self):
        """Content in span attributes takes precedence over content on events."""
        req = genai_request(1, span_attributes=lambda _i: {"gen_ai.input.messages": "from-span"})
        ev = req.resource_spans[0].scope_spans[0].spans[0].events.add()
        ev.name = "gen_ai.content.prompt"
        add_attributes(ev.attributes, {"gen_ai.prompt": "from-event"})
        assert row(both_paths(req.SerializeToString()))["input_messages"] == "from-span"

    def test_several_resources_and_scopes_keep_their_own_resource(self):
        """Each span carries the columns of its own resource, across resources and scopes."""
        req = genai_request(2, resource={"service.name": "first"})
        other = genai_request(3, seed=9, resource={"service.name": "second"})
        req.resource_spans.append(other.resource_spans[0])
        req.resource_spans[1].scope_spans.append(genai_request(1, seed=3).resource_spans[0].scope_spans[0])
        table = both_paths(req.SerializeToString())
        assert table["service_name"].to_pylist() == ["first"] * 2 + ["second"] * 4

    @pytest.mark.parametrize(
        ("field", "value", "where"),
        [
            ("trace_id", b"\x01" * 15, "resourceSpans[0].scopeSpans[0].spans[1].traceId: must be 16 bytes, got 15"),
            ("trace_id", b"", "resourceSpans[0].scopeSpans[0].spans[1].traceId: must be 16 bytes, got 0"),
            ("span_id", b"\x01" * 9, "resourceSpans[0].scopeSpans[0].spans[1].spanId: must be 8 bytes, got 9"),
            ("parent_span_id", b"\x01" * 3, "resourceSpans[0].scopeSpans[0].spans[1].parentSpanId: must be 8 bytes"),
        ],
    )
    @pytest.mark.parametrize("exact", [False, True])
    def test_wrong_id_length_is_an_error_naming_the_span(self, field, value, where, exact):
        """An id of the wrong length is a DecodeError that says which span and which field."""
        req = genai_request(3)
        setattr(req.resource_spans[0].scope_spans[0].spans[1], field, value)
        with pytest.raises(DecodeError, match=where.replace("[", r"\[").replace("]", r"\]")):
            decode_traces(req.SerializeToString(), exact=exact)

    @pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05abc", b"\x0a"])
    def test_invalid_protobuf_is_a_decode_error(self, payload):
        """Bytes that are not a valid export request raise DecodeError saying so."""
        with pytest.raises(DecodeError, match="not a valid protobuf ExportTraceServiceRequest"):
            decode_traces(payload)


def _attr(key: bytes, *parts: bytes) -> bytes:
    return wf.field(9, wf.LEN, wf.field(1, wf.LEN, key) + b"".join(parts))


IRREGULAR_SPANS = {
    "empty key left out": wf.span(wf.field(9, wf.LEN, wf.field(2, wf.LEN, wf.string_value("v")))),
    "value before key": wf.span(wf.field(9, wf.LEN, wf.field(2, wf.LEN, wf.int_value(3)) + wf.field(1, wf.LEN, b"k"))),
    "key length in two bytes": wf.span(
        wf.field(9, wf.LEN, b"\x0a" + wf.varint(1, width=2) + b"k" + wf.field(2, wf.LEN, wf.string_value("v")))
    ),
    "value field twice (merged)": wf.span(
        _attr(b"k", wf.field(2, wf.LEN, wf.string_value("a")), wf.field(2, wf.LEN, wf.int_value(5)))
    ),
    "unknown field in key-value": wf.span(
        _attr(b"k", wf.field(2, wf.LEN, wf.string_value("v")), wf.field(7, wf.VARINT, 1))
    ),
    "two oneof members, last wins": wf.span(_attr(b"k", wf.field(2, wf.LEN, wf.string_value("a") + wf.int_value(9)))),
    "unknown field in any-value": wf.span(
        _attr(b"k", wf.field(2, wf.LEN, wf.string_value("a") + wf.field(15, wf.VARINT, 1)))
    ),
    "key-value without value": wf.span(wf.field(9, wf.LEN, wf.field(1, wf.LEN, b"k"))),
    "int in a long varint": wf.span(
        _attr(b"gen_ai.usage.input_tokens", wf.field(2, wf.LEN, b"\x18" + wf.varint(7, width=3)))
    ),
    "span name twice": wf.span(wf.field(5, wf.LEN, b"first"), wf.field(5, wf.LEN, b"second")),
    "kind in a long varint": wf.span(b"\x30" + wf.varint(2, width=2)),
    "status twice (merged)": wf.span(
        wf.field(15, wf.LEN, wf.field(3, wf.VARINT, 2)), wf.field(15, wf.LEN, wf.field(2, wf.LEN, b"m"))
    ),
    "packed field in span": wf.span(wf.field(6, wf.LEN, b"\x02")),
}
REGULAR_SPANS = {
    "name before ids": wf.field(5, wf.LEN, b"n") + wf.span(),
    "flags (two-byte tag, fixed32)": wf.span(wf.field(16, wf.FIXED32, 0x101)),
    "unknown span field": wf.span(wf.field(99, wf.VARINT, 5), wf.field(100, wf.LEN, b"xyz")),
    "long content and key": wf.span(_attr(b"k" * 200, wf.field(2, wf.LEN, wf.string_value("c" * 5000)))),
    "negative and huge ints": wf.span(
        _attr(b"a", wf.field(2, wf.LEN, wf.int_value(-1))),
        _attr(b"gen_ai.usage.output_tokens", wf.field(2, wf.LEN, wf.int_value(2**40))),
    ),
    "times as fixed64": wf.span(wf.field(7, wf.FIXED64, 5), wf.field(8, wf.FIXED64, 9)),
}


class TestFastPath:
    def test_sdk_encoded_spans_take_the_fast_path(self):
        """Spans as the OpenTelemetry SDK encodes them never need the slower exact path."""
        spans = emit_spans(InMemorySpanExporter(), 20)
        payload = encode_spans(spans).SerializeToString()
        spans_from_wire(payload)  # raises IrregularError if the encoding fell off the fast path
        both_paths(payload)

    def test_spans_of_different_shapes_in_one_request(self):
        """Spans with different numbers of fields and attributes decode alike on both paths (lock-step scan)."""
        counts = [3, 0, 7, 1, 0, 12, 2]
        req = genai_request(len(counts), span_attributes=lambda i: {f"k{j}": j for j in range(counts[i])})
        spans = req.resource_spans[0].scope_spans[0].spans
        spans[2].ClearField("parent_span_id")
        spans[3].status.message = "late field"
        table = both_paths(req.SerializeToString())
        assert [len(m) for m in table["span_attributes"].to_pylist()] == counts
        assert table["parent_span_id"].to_pylist()[2] == ""

    @pytest.mark.parametrize("name", sorted(IRREGULAR_SPANS))
    def test_irregular_encodings_fall_back_to_the_exact_path(self, name):
        """Encodings the vectorised path does not handle are decoded exactly as protobuf would."""
        payload = wf.trace_request(IRREGULAR_SPANS[name])
        with pytest.raises(wire.IrregularError):
            spans_from_wire(payload)
        both_paths(payload)

    @pytest.mark.parametrize("name", sorted(REGULAR_SPANS))
    def test_other_valid_encodings_stay_on_the_fast_path(self, name):
        """Valid encodings the vectorised path handles decode the same as the exact path."""
        payload = wf.trace_request(REGULAR_SPANS[name])
        spans_from_wire(payload)
        both_paths(payload)

    @pytest.mark.parametrize(
        ("name", "check"),
        [
            ("span name twice", lambda r: r["span_name"] == "second"),
            ("two oneof members, last wins", lambda r: r["span_attributes"] == [("k", "9")]),
            ("value field twice (merged)", lambda r: r["span_attributes"] == [("k", "5")]),
            ("empty key left out", lambda r: r["span_attributes"] == [("", "v")]),
            ("key-value without value", lambda r: r["span_attributes"] == [("k", "")]),
            ("int in a long varint", lambda r: r["input_tokens"] == 7),
            ("status twice (merged)", lambda r: (r["status_code"], r["status_message"]) == ("ERROR", "m")),
        ],
    )
    def test_protobuf_semantics_are_kept(self, name, check):
        """Repeated fields, merged messages and oneofs follow protobuf's rules (last one wins, merge)."""
        assert check(row(decode_traces(wf.trace_request(IRREGULAR_SPANS[name]))))

    def test_invalid_utf8_in_an_attribute_is_an_error(self):
        """Invalid UTF-8 inside an attribute is caught (the fast path defers to protobuf's verdict)."""
        payload = wf.trace_request(wf.span(_attr(b"k", wf.field(2, wf.LEN, wf.field(1, wf.LEN, b"\xff\xfe")))))
        with pytest.raises(DecodeError):
            decode_traces(payload)

    @pytest.mark.parametrize(
        ("name", "span"),
        [
            ("invalid UTF-8 in the trace state", wf.span(wf.field(3, wf.LEN, b"\xff\xfe"))),
            ("a corrupt link", wf.span(wf.field(13, wf.LEN, b"\x0a\x7f"))),
            ("invalid UTF-8 in a link's trace state", wf.span(wf.field(13, wf.LEN, wf.field(3, wf.LEN, b"\xff")))),
            ("a corrupt event", wf.span(wf.field(11, wf.LEN, b"\x12\x7f"))),
            ("a tag wider than 32 bits", wf.span(wf.varint(1 << 33) + wf.varint(5))),
            ("invalid UTF-8 in the span name", wf.span(wf.field(5, wf.LEN, b"\xc3"))),
        ],
    )
    def test_what_the_columnar_path_does_not_store_is_still_checked(self, name, span):
        """The single shallow parse rejects what protobuf rejects, even in fields the table does not keep."""
        payload = wf.trace_request(span)
        with pytest.raises(wire.IrregularError):
            spans_from_wire(payload)
        with pytest.raises(DecodeError, match="not a valid protobuf ExportTraceServiceRequest"):
            decode_traces(payload)

    def test_a_bad_id_and_a_corrupt_link_fail_as_the_exact_path_says(self):
        """A request wrong in two ways names the error protobuf finds, not the id check's."""
        payload = wf.trace_request(wf.span(wf.field(13, wf.LEN, b"\x0a\x7f"), trace_id=b"\x01"))
        with pytest.raises(DecodeError, match="not a valid protobuf"):
            decode_traces(payload)

    def test_large_request_matches_the_exact_path(self):
        """A realistic request of many spans decodes identically on both paths."""
        req = genai_request(
            300,
            span_attributes=lambda i: {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.usage.prompt_tokens": i,
                "gen_ai.response.time_to_first_chunk": i / 100,
                "gen_ai.response.finish_reasons": ["stop", "length"][: i % 3],
                "gen_ai.input.messages": "m" * (i * 3),
                "x.bytes": bytes([i % 256]),
                "x.list": [i, "a"],
            },
        )
        both_paths(req.SerializeToString())


class TestLogs:
    def test_schema_and_values(self):
        """Log records decode to LOG_SCHEMA with body, severity, user and attributes."""
        table = decode_logs(logs_request(2).SerializeToString(), received_ns=5)
        assert table.schema.equals(LOG_SCHEMA)
        r = row(table, 1)
        assert (r["body"], r["severity_number"], r["severity_text"], r["user_id"]) == ("log 1", 9, "INFO", "u1")
        assert (r["service_name"], r["log_attributes"], r["trace_id"]) == ("chat-api", [("n", "1")], "")

    @pytest.mark.parametrize(
        ("body", "text"),
        [("hello", "hello"), ({"event": "x", "n": 1}, '{"event":"x","n":1}'), (3, "3"), (None, "")],
    )
    def test_body_becomes_text(self, body, text):
        """A log body of any type becomes text (structured bodies as compact JSON)."""
        req = logs_request(1)
        rec = req.resource_logs[0].scope_logs[0].log_records[0]
        rec.ClearField("body")
        if body is not None:
            set_value(rec.body, body)
        payload = req.SerializeToString()
        fast, exact = decode_logs(payload, received_ns=1), decode_logs(payload, exact=True, received_ns=1)
        assert fast.equals(exact)
        assert row(fast)["body"] == text

    def test_event_name_from_field_or_older_attribute(self):
        """event_name comes from LogRecord.event_name, else from the older event.name attribute."""
        req = logs_request(2)
        recs = req.resource_logs[0].scope_logs[0].log_records
        recs[0].event_name = "gen_ai.client.inference.operation.details"
        add_attributes(recs[1].attributes, {"event.name": "legacy"})
        table = decode_logs(req.SerializeToString(), received_ns=1)
        assert table["event_name"].to_pylist() == ["gen_ai.client.inference.operation.details", "legacy"]

    def test_missing_times_fall_back_to_observed_then_receipt(self):
        """A record without a time uses its observed time, and without both the time of receipt."""
        req = logs_request(2)
        recs = req.resource_logs[0].scope_logs[0].log_records
        recs[0].time_unix_nano = 0
        recs[0].observed_time_unix_nano = 77
        recs[1].time_unix_nano = 0
        table = decode_logs(req.SerializeToString(), received_ns=99)
        assert [t.value for t in table["timestamp"]] == [77, 99]
        assert [t.value for t in table["observed_timestamp"]] == [77, 99]

    def test_trace_context_is_kept(self):
        """Logs inside a span keep its trace and span id as hex."""
        req = logs_request(1)
        rec = req.resource_logs[0].scope_logs[0].log_records[0]
        rec.trace_id = b"\xab" * 16
        rec.span_id = b"\xcd" * 8
        r = row(decode_logs(req.SerializeToString(), received_ns=1))
        assert (r["trace_id"], r["span_id"]) == ("ab" * 16, "cd" * 8)

    def test_empty_request(self):
        """A logs request without records decodes to zero rows."""
        assert decode_logs(ExportLogsServiceRequest().SerializeToString()).num_rows == 0


class TestMetrics:
    def test_gauge_points(self):
        """Gauge points become rows with value, name, unit and point attributes."""
        table = decode_metrics(metrics_request(2).SerializeToString())
        assert table.schema.equals(METRIC_SCHEMA)
        r = row(table, 1)
        assert (r["metric_name"], r["metric_kind"], r["unit"], r["value"]) == ("gpu.utilization", "gauge", "1", 0.5)
        assert (r["attributes"], r["service_name"]) == ([("gpu", "1")], "chat-api")
        assert r["start_timestamp"] == r["timestamp"]

    def test_sum_histogram_and_summary(self):
        """Sums keep monotonicity; histograms their count, sum, bounds and buckets; summaries count and sum."""
        req = ExportMetricsServiceRequest()
        ms = req.resource_metrics.add().scope_metrics.add()
        s = ms.metrics.add(name="tokens")
        s.sum.is_monotonic = True
        s.sum.data_points.add(as_int=42, time_unix_nano=5, start_time_unix_nano=1)
        h = ms.metrics.add(name="latency")
        h.histogram.data_points.add(
            count=3, sum=1.5, explicit_bounds=[0.1, 1.0], bucket_counts=[1, 1, 1], time_unix_nano=5
        )
        sm = ms.metrics.add(name="q")
        sm.summary.data_points.add(count=2, sum=4.0, time_unix_nano=5)
        rows = decode_metrics(req.SerializeToString()).to_pylist()
        assert [(r["metric_kind"], r["value"], r["is_monotonic"]) for r in rows] == [
            ("sum", 42.0, True),
            ("histogram", 1.5, False),
            ("summary", 4.0, False),
        ]
        assert (rows[1]["count"], rows[1]["bounds"], rows[1]["bucket_counts"]) == (3, [0.1, 1.0], [1, 1, 1])
        assert rows[0]["start_timestamp"].value == 1

    def test_exponential_histogram_becomes_explicit_bounds(self):
        """An exponential histogram becomes bucket boundaries base**(offset+i) with zero and negatives first."""
        req = ExportMetricsServiceRequest()
        m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="e")
        p = m.exponential_histogram.data_points.add(scale=0, count=6, sum=10.0, zero_count=1)
        p.positive.offset = 1
        p.positive.bucket_counts.extend([2, 3])
        p.negative.bucket_counts.extend([0])
        r = decode_metrics(req.SerializeToString()).to_pylist()[0]
        assert r["bounds"] == [2.0, 4.0, 8.0]
        assert r["bucket_counts"] == [1, 2, 3, 0]
        assert sum(r["bucket_counts"]) == r["count"]
        assert math.isclose(r["sum"], 10.0)

    def test_tenant_on_a_point_or_resource(self):
        """A tenant on the data point wins; otherwise the resource's tenant applies."""
        req = metrics_request(2)
        add_attributes(req.resource_metrics[0].resource.attributes, {"sovtel.tenant": "res"})
        add_attributes(
            req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].attributes, {"sovtel.tenant": "pt"}
        )
        assert decode_metrics(req.SerializeToString())["tenant_id"].to_pylist() == ["pt", "res"]


@pytest.mark.parametrize(
    ("signal", "payload"),
    [
        (Signal.TRACES, genai_request(2).SerializeToString()),
        (Signal.LOGS, logs_request(2).SerializeToString()),
        (Signal.METRICS, metrics_request(2).SerializeToString()),
    ],
)
def test_decode_dispatches_by_signal(signal, payload):
    """decode() picks the decoder of the signal."""
    assert decode(signal, payload).num_rows == 2


def test_logs_irregular_encoding_matches_exact_path():
    """A log record in an encoding the fast path does not handle decodes like the exact path."""
    record = wf.field(5, wf.LEN, wf.string_value("a")) + wf.field(5, wf.LEN, wf.int_value(4))
    payload = wf.log_request(record, wf.field(3, wf.LEN, b"WARN"))
    assert decode_logs(payload, received_ns=1).equals(decode_logs(payload, exact=True, received_ns=1))
    assert decode_logs(payload, received_ns=1)["body"].to_pylist() == ["4", ""]
