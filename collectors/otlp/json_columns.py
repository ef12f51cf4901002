"""OTLP/JSON spans and log records straight to their columns, without building protobuf messages first.

Takes the shape SDKs send (lowerCamelCase names, hex ids, times as digit strings or numbers, enums
as numbers or names, scalar attribute values). Anything else, from an unknown field to an invalid
value, raises ``JsonIrregular``; the caller then parses the request with protobuf's own JSON
mapping, which accepts every spelling the specification allows and says what is wrong and where.
Both give identical tables (tests compare them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collectors.otlp.attributes import Attributes, Cls, MessageOthers, Values
from collectors.otlp.limits import DEFAULT_LIMITS, RecordLimits
from collectors.otlp.log_columns import Logs
from collectors.otlp.span_columns import Spans
from collectors.otlp.tables import Locator, Records, capped, nanos

INT64_MIN, INT64_MAX, UINT64_MAX, UINT32_MAX = -(2**63), 2**63 - 1, 2**64 - 1, 2**32 - 1
# Doubles given as JSON integers convert exactly up to here; larger ones are left to protobuf.
_EXACT_INT_DOUBLE = 2**53
_DIGITS = re.compile(r"-?[0-9]{1,20}", re.ASCII)
_HEX_32 = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)
_HEX_16 = re.compile(r"[0-9a-fA-F]{16}", re.ASCII)

_RESOURCE_SPANS_KEYS = frozenset({"resource", "scopeSpans", "schemaUrl"})
_SCOPE_SPANS_KEYS = frozenset({"scope", "spans", "schemaUrl"})
_SPAN_KEYS = frozenset({
    "traceId", "spanId", "parentSpanId", "traceState", "flags", "name", "kind", "startTimeUnixNano",
    "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "links",
    "droppedLinksCount", "status",
})
_STATUS_KEYS = frozenset({"code", "message"})
_RESOURCE_LOGS_KEYS = frozenset({"resource", "scopeLogs", "schemaUrl"})
_SCOPE_LOGS_KEYS = frozenset({"scope", "logRecords", "schemaUrl"})
_LOG_KEYS = frozenset({
    "timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body", "attributes",
    "droppedAttributesCount", "flags", "traceId", "spanId", "eventName",
})
_KEY_VALUE_KEYS = frozenset({"key", "value"})
_OTHER_VALUES = frozenset({"arrayValue", "kvlistValue", "bytesValue"})

_SPAN_KINDS = {name: number for number, name in enumerate(Span.SpanKind.keys())}
_STATUS_CODES = {name: number for number, name in enumerate(Status.StatusCode.keys())}
_SEVERITIES = {name: SeverityNumber.Value(name) for name in SeverityNumber.keys()}  # noqa: SIM118 (an enum wrapper, not a dict)


M = TypeVar("M", bound=Message)


class JsonIrregular(Exception):
    """The JSON is not in the shape this path takes, or is invalid; protobuf's JSON mapping decides."""


def _obj(value: Any, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or not keys.issuperset(value):
        raise JsonIrregular("an object with fields this path does not take")
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise JsonIrregular(f"{key} is not a list")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise JsonIrregular(f"{key} is not a string")
    return value


def _integer(value: Any, low: int, high: int) -> int:
    # bool is an int in Python, but not in JSON.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise JsonIrregular("not an integer")
    if not low <= number <= high:
        raise JsonIrregular("integer out of range")
    return number


def _unsigned(obj: dict[str, Any], key: str, high: int) -> int:
    return _integer(obj[key], 0, high) if key in obj else 0


def _enum(obj: dict[str, Any], key: str, names: Mapping[str, int]) -> int:
    if key not in obj:
        return 0
    value = obj[key]
    if isinstance(value, str) and value in names:
        return names[value]
    number = _integer(value, 0, len(names) - 1) if not isinstance(value, str) else -1
    if number not in names.values():
        raise JsonIrregular(f"{key} is not a known value")
    return number


def _hex_id(obj: dict[str, Any], key: str, pattern: re.Pattern[str], optional: bool) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise JsonIrregular(f"{key} is not a string")
    if value == "" and optional:
        return ""
    if not pattern.fullmatch(value):
        raise JsonIrregular(f"{key} is not a hex id of the right length")
    return value.lower()


def _message(value: Any, message: M) -> M:
    """A rare part (resource, scope, event, array) through protobuf's own JSON mapping."""
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
            RecursionError) as exc:
        raise JsonIrregular(str(exc)) from None
    return message


class _ValueColumns:
    """AnyValues appended one by one into the classes and typed columns of ``Values``."""

    def __init__(self) -> None:
        self.cls: list[int] = []
        self.strings: list[str] = []
        self.bools: list[bool] = []
        self.ints: list[int] = []
        self.doubles: list[float] = []
        self.others: list[AnyValue] = []

    def add(self, value: Any) -> None:
        if not isinstance(value, dict) or len(value) > 1:
            raise JsonIrregular("an AnyValue that is not an object of one member")
        if not value:
            self.cls.append(Cls.EMPTY)
            return
        ((kind, v),) = value.items()
        if kind == "stringValue" and isinstance(v, str):
            self.cls.append(Cls.STRING)
            self.strings.append(v)
        elif kind == "intValue":
            self.ints.append(_integer(v, INT64_MIN, INT64_MAX))
            self.cls.append(Cls.INT)
        elif kind == "boolValue" and isinstance(v, bool):
            self.cls.append(Cls.BOOL)
            self.bools.append(v)
        elif kind == "doubleValue" and _is_double(v):
            self.cls.append(Cls.DOUBLE)
            self.doubles.append(float(v))
        elif kind == "arrayValue":
            self.others.append(_array(v) or _message(value, AnyValue()))
            self.cls.append(Cls.OTHER)
        elif kind in _OTHER_VALUES:
            self.others.append(_message(value, AnyValue()))
            self.cls.append(Cls.OTHER)
        else:
            raise JsonIrregular(f"an AnyValue {kind} this path does not take")

    def values(self) -> Values:
        return Values(
            cls=np.array(self.cls, np.uint8),
            strings=pa.array(self.strings, pa.string()),
            bools=np.array(self.bools, np.bool_),
            ints=np.array(self.ints, np.int64),
            doubles=np.array(self.doubles, np.float64),
            others=MessageOthers(self.others),
        )


def _scalar(value: Any) -> AnyValue | None:
    """A JSON AnyValue holding a scalar (or nothing) as the message; None for anything else."""
    if not isinstance(value, dict) or len(value) > 1:
        return None
    if not value:
        return AnyValue()
    ((kind, v),) = value.items()
    if kind == "stringValue" and isinstance(v, str):
        return AnyValue(string_value=v)
    if kind == "boolValue" and isinstance(v, bool):
        return AnyValue(bool_value=v)
    if kind == "doubleValue" and _is_double(v):
        return AnyValue(double_value=float(v))
    if kind == "intValue":
        try:
            return AnyValue(int_value=_integer(v, INT64_MIN, INT64_MAX))
        except JsonIrregular:
            return None
    return None


def _array(value: Any) -> AnyValue | None:
    """An array of scalars built directly (the usual case, e.g. finish reasons); None for any other."""
    if not isinstance(value, dict) or not {"values"}.issuperset(value):
        return None
    items = value.get("values", [])
    if not isinstance(items, list):
        return None
    elements = []
    for item in items:
        element = _scalar(item)
        if element is None:
            return None
        elements.append(element)
    return AnyValue(array_value=ArrayValue(values=elements))


def _is_double(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _EXACT_INT_DOUBLE


class _AttributeColumns:
    """The key-value lists of many owners, appended owner by owner."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.keys: list[str] = []
        self.values = _ValueColumns()

    def add(self, pairs: Sequence[Any]) -> None:
        for pair in pairs:
            kv = _obj(pair, _KEY_VALUE_KEYS)
            self.keys.append(_text(kv, "key"))
            self.values.add(kv.get("value", {}))
        self.counts.append(len(pairs))

    def attributes(self) -> Attributes:
        return Attributes(np.array(self.counts, np.int64), pa.array(self.keys, pa.string()), self.values.values())


def _blocks(
    root: Any, out: Records, names: tuple[str, str, str], keys: tuple[frozenset[str], frozenset[str], frozenset[str]],
    record: Callable[[dict[str, Any]], None],
) -> None:
    """Walk resources and scopes, checking them through protobuf (few), and hand each record to ``record``."""
    outer, middle, inner = names
    for r, item in enumerate(_list(_obj(root, frozenset({outer})), outer)):
        block = _obj(item, keys[0])
        _text(block, "schemaUrl")
        resource = _message(block.get("resource", {}), Resource())
        out.resources.append(resource.attributes)
        count = 0
        for s, scope_item in enumerate(_list(block, middle)):
            scope_block = _obj(scope_item, keys[1])
            _text(scope_block, "schemaUrl")
            _message(scope_block.get("scope", {}), InstrumentationScope())
            records = _list(scope_block, inner)
            out.locate.add(r, s, len(records))
            count += len(records)
            for rec in records:
                record(_obj(rec, keys[2]))
        out.per_resource.append(count)
        out.n += count


def spans_from_json(root: Any, limits: RecordLimits = DEFAULT_LIMITS) -> Spans:
    """The spans of a parsed OTLP/JSON ExportTraceServiceRequest as columns; raises JsonIrregular.

    Attributes and events beyond the limits are dropped unread (and counted), so a span of 300,000
    events costs what one of 128 does.
    """
    out = Spans(Locator("resourceSpans", "scopeSpans", "spans"))
    max_attributes, max_events = limits.max_attributes_per_record, limits.max_events_per_span
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    names: list[str] = []
    kinds: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    codes: list[int] = []
    messages: list[str] = []
    attributes = _AttributeColumns()
    events: list[Any] = []
    event_spans: list[int] = []

    def span(sp: dict[str, Any]) -> None:
        trace_ids.append(_hex_id(sp, "traceId", _HEX_32, optional=False))
        span_ids.append(_hex_id(sp, "spanId", _HEX_16, optional=False))
        parent_ids.append(_hex_id(sp, "parentSpanId", _HEX_16, optional=True))
        _text(sp, "traceState")
        names.append(_text(sp, "name"))
        kinds.append(_enum(sp, "kind", _SPAN_KINDS))
        starts.append(_unsigned(sp, "startTimeUnixNano", UINT64_MAX))
        ends.append(_unsigned(sp, "endTimeUnixNano", UINT64_MAX))
        for key in ("droppedAttributesCount", "droppedEventsCount", "droppedLinksCount", "flags"):
            _unsigned(sp, key, UINT32_MAX)
        status = _obj(sp.get("status", {}), _STATUS_KEYS)
        codes.append(_enum(status, "code", _STATUS_CODES))
        messages.append(_text(status, "message"))
        attributes.add(capped(_list(sp, "attributes"), max_attributes, out.report, "attributes_over_limit"))
        if _list(sp, "links"):
            raise JsonIrregular("links (their ids need rewriting)")
        for event in capped(_list(sp, "events"), max_events, out.report, "events_over_limit"):
            events.append(_message(event, Span.Event()))
            event_spans.append(len(names) - 1)

    _blocks(root, out, ("resourceSpans", "scopeSpans", "spans"),
            (_RESOURCE_SPANS_KEYS, _SCOPE_SPANS_KEYS, _SPAN_KEYS), span)
    out.trace_id = pa.array(trace_ids, pa.string())
    out.span_id = pa.array(span_ids, pa.string())
    out.parent_span_id = pa.array(parent_ids, pa.string())
    out.name = pa.array(names, pa.string())
    out.kind = np.asarray(kinds, np.int64)
    out.start = nanos(starts)
    out.end = nanos(ends)
    out.status_code = np.asarray(codes, np.int64)
    out.status_message = pa.array(messages, pa.string())
    out.attributes = attributes.attributes()
    out.events = events
    out.event_spans = np.asarray(event_spans, np.int64)
    return out


def logs_from_json(root: Any, limits: RecordLimits = DEFAULT_LIMITS) -> Logs:
    """The log records of a parsed OTLP/JSON ExportLogsServiceRequest as columns; raises JsonIrregular."""
    out = Logs(Locator("resourceLogs", "scopeLogs", "logRecords"))
    max_attributes = limits.max_attributes_per_record
    times: list[int] = []
    observed: list[int] = []
    severities: list[int] = []
    severity_texts: list[str] = []
    bodies = _ValueColumns()
    attributes = _AttributeColumns()
    trace_ids: list[str] = []
    span_ids: list[str] = []
    event_names: list[str] = []

    def record(rec: dict[str, Any]) -> None:
        times.append(_unsigned(rec, "timeUnixNano", UINT64_MAX))
        observed.append(_unsigned(rec, "observedTimeUnixNano", UINT64_MAX))
        severities.append(_enum(rec, "severityNumber", _SEVERITIES))
        severity_texts.append(_text(rec, "severityText"))
        bodies.add(rec.get("body", {}))
        attributes.add(capped(_list(rec, "attributes"), max_attributes, out.report, "attributes_over_limit"))
        _unsigned(rec, "droppedAttributesCount", UINT32_MAX)
        _unsigned(rec, "flags", UINT32_MAX)
        trace_ids.append(_hex_id(rec, "traceId", _HEX_32, optional=True))
        span_ids.append(_hex_id(rec, "spanId", _HEX_16, optional=True))
        event_names.append(_text(rec, "eventName"))

    _blocks(root, out, ("resourceLogs", "scopeLogs", "logRecords"),
            (_RESOURCE_LOGS_KEYS, _SCOPE_LOGS_KEYS, _LOG_KEYS), record)
    out.time = nanos(times)
    out.observed = nanos(observed)
    out.severity = np.asarray(severities, np.int64)
    out.severity_text = pa.array(severity_texts, pa.string())
    out.body = bodies.values()
    out.attributes = attributes.attributes()
    out.trace_id = pa.array(trace_ids, pa.string())
    out.span_id = pa.array(span_ids, pa.string())
    out.event_name = pa.array(event_names, pa.string())
    return out
