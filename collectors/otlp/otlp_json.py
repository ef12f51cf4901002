"""OTLP/JSON export requests to tables: parsed once, straight to columns, or through protobuf's JSON mapping.

OTLP/JSON is protobuf's JSON mapping with three differences the spec defines: trace and span ids
are hex (not base64), enum values may be integers, and unknown fields are ignored. Requests in the
shape SDKs send go from the parsed JSON straight to columns (``json_columns``); any other is
parsed into the protobuf message (ids rewritten first), which is decoded as it is, with no
serialise and parse again.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import Message

from collectors.otlp.decode import REQUESTS, DecodeError, decode_message
from collectors.otlp.json_columns import JsonIrregular, logs_from_json, spans_from_json
from collectors.otlp.log_columns import log_table
from collectors.otlp.span_columns import span_table
from sovtel.records import Signal

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_ID_FIELDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def _get(obj: dict[str, Any], camel: str, snake: str) -> tuple[str, Any] | None:
    # Receivers accept both the lowerCamelCase JSON names and the original field names.
    for key in (camel, snake):
        if key in obj:
            return key, obj[key]
    return None


def _children(obj: Any, path: str, camel: str, snake: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects in list field ``camel`` of ``obj``; anything of the wrong shape is left for ParseDict."""
    if not isinstance(obj, dict):
        return
    found = _get(obj, camel, snake)
    if found is None or not isinstance(found[1], list):
        return
    key, items = found
    for i, item in enumerate(items):
        if isinstance(item, dict):
            yield f"{path}.{key}[{i}]" if path else f"{key}[{i}]", item


def _rewrite_ids(obj: dict[str, Any], path: str) -> None:
    for camel, snake in _ID_FIELDS:
        found = _get(obj, camel, snake)
        if found is None:
            continue
        key, value = found
        if not isinstance(value, str):
            raise DecodeError(f"{path}.{key}: must be a hex string, got {type(value).__name__}")
        if not _HEX.fullmatch(value):
            raise DecodeError(f"{path}.{key}: {value[:40]!r} is not a hex string")
        obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _id_holders(signal: Signal, root: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in the request that carries trace or span ids, with its path."""
    if signal is Signal.TRACES:
        for p1, rs in _children(root, "", "resourceSpans", "resource_spans"):
            for p2, ss in _children(rs, p1, "scopeSpans", "scope_spans"):
                for p3, span in _children(ss, p2, "spans", "spans"):
                    yield p3, span
                    yield from _children(span, p3, "links", "links")
    elif signal is Signal.LOGS:
        for p1, rl in _children(root, "", "resourceLogs", "resource_logs"):
            for p2, sl in _children(rl, p1, "scopeLogs", "scope_logs"):
                yield from _children(sl, p2, "logRecords", "log_records")
    else:
        for p1, rm in _children(root, "", "resourceMetrics", "resource_metrics"):
            for p2, sm in _children(rm, p1, "scopeMetrics", "scope_metrics"):
                for p3, metric in _children(sm, p2, "metrics", "metrics"):
                    for kind in _METRIC_DATA:
                        data = metric.get(kind)
                        for p4, point in _children(data, f"{p3}.{kind}", "dataPoints", "data_points"):
                            yield from _children(point, p4, "exemplars", "exemplars")


_FIELD_STEP = re.compile(r"Failed to parse (\w+) field: ")


def _condense(message: str) -> str:
    """json_format nests one 'Failed to parse X field:' per level; say it as a path instead."""
    path = _FIELD_STEP.findall(message)
    reason = _FIELD_STEP.sub("", message).rstrip(".")
    if not path:
        return reason
    if len(path) > 8:
        path = [*path[:4], "…", *path[-3:]]
    return f"at {'.'.join(path)}: {reason[:300]}"


def _load(signal: Signal, body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raises DecodeError saying what is wrong."""
    name = REQUESTS[signal].DESCRIPTOR.name
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"body is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        root = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise DecodeError("body JSON is nested too deeply") from None
    if not isinstance(root, dict):
        raise DecodeError(f"body must be a JSON object (an {name}), got {type(root).__name__}")
    return root


def _message(signal: Signal, root: dict[str, Any]) -> Message:
    """The JSON object as the protobuf request (rewriting ``root``'s ids); raises DecodeError."""
    name = REQUESTS[signal].DESCRIPTOR.name
    for path, holder in _id_holders(signal, root):
        _rewrite_ids(holder, path)
    message = REQUESTS[signal]()
    try:
        json_format.ParseDict(root, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"not a valid OTLP/JSON {name}: {_condense(str(exc))}") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # json_format reports most shape errors as ParseError but lets a few odd ones through.
        raise DecodeError(f"not a valid OTLP/JSON {name}: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise DecodeError(f"{name} JSON is nested too deeply") from None
    return message


def request_from_json(signal: Signal, body: bytes) -> Message:
    """Parse an OTLP/JSON export request into its message; raises DecodeError saying what is wrong and where."""
    return _message(signal, _load(signal, body))


def decode_json(signal: Signal, body: bytes, *, received_ns: int | None = None) -> pa.Table:
    """An OTLP/JSON export request as a table of the signal's schema; raises DecodeError.

    The body is parsed once: JSON in the usual shape goes straight to columns, any other through
    the protobuf message, decoded exactly; both give the same table.
    """
    root = _load(signal, body)
    try:
        if signal is Signal.TRACES:
            return span_table(spans_from_json(root))
        if signal is Signal.LOGS:
            return log_table(logs_from_json(root), time.time_ns() if received_ns is None else received_ns)
    except JsonIrregular:
        pass  # protobuf's JSON mapping decides, and says what is wrong
    return decode_message(signal, _message(signal, root), received_ns=received_ns)


def request_to_json(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of an export request (hex ids, camelCase keys), e.g. for tests and tools."""
    data: dict[str, Any] = json_format.MessageToDict(message)
    signal = next(s for s, cls in REQUESTS.items() if isinstance(message, cls))
    for _path, holder in _id_holders(signal, data):
        for camel, _snake in _ID_FIELDS:
            if camel in holder:
                holder[camel] = base64.b64decode(holder[camel]).hex()
    return data
