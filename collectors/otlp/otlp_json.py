"""OTLP/JSON to the protobuf export request, so JSON shares the protobuf decode path.

OTLP/JSON is protobuf's JSON mapping with three differences the spec defines: trace and span ids
are hex (not base64), enum values may be integers, and unknown fields are ignored. The first is
rewritten here before ``json_format`` parses the rest.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp.decode import DecodeError
from sovtel.records import Signal

REQUESTS: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
}
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


def request_from_json(signal: Signal, body: bytes) -> Message:
    """Parse an OTLP/JSON export request; raises DecodeError saying what is wrong and where."""
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


def request_to_json(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of an export request (hex ids, camelCase keys), e.g. for tests and tools."""
    data: dict[str, Any] = json_format.MessageToDict(message)
    signal = next(s for s, cls in REQUESTS.items() if isinstance(message, cls))
    for _path, holder in _id_holders(signal, data):
        for camel, _snake in _ID_FIELDS:
            if camel in holder:
                holder[camel] = base64.b64decode(holder[camel]).hex()
    return data
