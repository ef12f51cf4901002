"""OTLP/JSON export requests to tables: parsed once, straight to columns, or through protobuf's JSON mapping.

OTLP/JSON is protobuf's JSON mapping with three differences the spec defines: trace and span ids
are hex (not base64), enum values may be integers, and unknown fields are ignored. Requests in the
shape SDKs send go from the parsed JSON straight to columns (``json_columns``); any other is
parsed into the protobuf message (ids rewritten first), which is decoded as it is, with no
serialise and parse again. A request protobuf's mapping rejects is parsed again record by record:
the records that parse are kept, the others rejected with their place and why (partial success).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import Message

from collectors.otlp.decode import NOUNS, REQUESTS, DecodeError, decode_parsed, strict
from collectors.otlp.json_columns import JsonIrregular, logs_from_json, spans_from_json
from collectors.otlp.limits import DEFAULT_LIMITS, Clock, RecordLimits
from collectors.otlp.log_columns import log_table
from collectors.otlp.salvage import POINT_CLASSES
from collectors.otlp.span_columns import span_table
from collectors.otlp.tables import Decoded, Report, finish
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


def decode_json_request(
    signal: Signal, body: bytes, *, limits: RecordLimits = DEFAULT_LIMITS, received_ns: int | None = None
) -> Decoded:
    """An OTLP/JSON export request as the records to keep and what was rejected or changed (see
    ``decode.decode_request``); raises DecodeError if it cannot be parsed or holds nothing to keep."""
    now = time.time_ns() if received_ns is None else received_ns
    return _decode_json(signal, body, limits, now, Clock.at(now, limits))


def decode_json(signal: Signal, body: bytes, *, received_ns: int | None = None) -> pa.Table:
    """An OTLP/JSON export request as a table of the signal's schema, times as sent; raises DecodeError
    (also if any record cannot be kept).

    The body is parsed once: JSON in the usual shape goes straight to columns, any other through
    the protobuf message, decoded exactly; both give the same table.
    """
    now = time.time_ns() if received_ns is None else received_ns
    return strict(signal, _decode_json(signal, body, DEFAULT_LIMITS, now, None))


def _decode_json(signal: Signal, body: bytes, limits: RecordLimits, now: int, clock: Clock | None) -> Decoded:
    root = _load(signal, body)
    try:
        if signal is Signal.TRACES:
            sp = spans_from_json(root, limits)
            return _kept(signal, finish(span_table(sp, limits, clock), sp.report))
        if signal is Signal.LOGS:
            lg = logs_from_json(root, limits)
            return _kept(signal, finish(log_table(lg, now, clock), lg.report))
    except JsonIrregular:
        pass  # protobuf's JSON mapping decides, and says what is wrong
    report, error = Report(), None
    try:
        message = _message(signal, root)
    except DecodeError as exc:
        # ``root`` was rewritten part-way: read the body again and parse it record by record.
        error = str(exc)
        message, report = _salvage(signal, _load(signal, body), error)
    return decode_parsed(signal, message, limits=limits, received_ns=now, report=report, error=error,
                         replace_times=clock is not None)


def _kept(signal: Signal, decoded: Decoded) -> Decoded:
    if decoded.rejected and not decoded.table.num_rows:
        raise DecodeError(decoded.summary(NOUNS[signal]))
    return decoded


# ----------------------------------------------------------------------------- record by record

_RECORD_NAMES = {
    Signal.TRACES: (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans", "spans")),
    Signal.LOGS: (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records")),
    Signal.METRICS: (("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"),
                     ("metrics", "metrics")),
}


def _parse_dict(value: Any, message: Message, where: str) -> str | None:
    """Parse ``value`` into ``message``; None if it parsed, else the reason with its place."""
    if not isinstance(value, dict):
        return f"{where}: must be a JSON object, got {type(value).__name__}"
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        return f"{where}: {_condense(str(exc))}"
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        return f"{where}: {type(exc).__name__}: {exc}"
    except RecursionError:
        return f"{where}: nested too deeply"
    return None


def _list_of(obj: Any, names: tuple[str, str], error: str) -> list[Any]:
    """The list field ``names`` (camel or snake) of ``obj``; anything else cannot be split (the error stands)."""
    found = _get(obj, *names) if isinstance(obj, dict) else None
    if found is None:
        return []
    if not isinstance(found[1], list):
        raise DecodeError(error)
    return found[1]


def _salvage(signal: Signal, root: dict[str, Any], error: str) -> tuple[Message, Report]:
    """The request with the records that parse on their own; raises DecodeError(error) if it cannot be split.

    Spans and log records that do not parse stay as empty placeholders, rejected in the report; data
    points are parsed one by one and only the good ones kept.
    """
    outer, middle, inner = _RECORD_NAMES[signal]
    request: Any = REQUESTS[signal]()
    report = Report()
    bad: dict[int, str] = {}
    index = 0
    for r, block in enumerate(_list_of(root, outer, error)):
        path = f"{outer[0]}[{r}]"
        if not isinstance(block, dict):
            raise DecodeError(error)
        # The block and scope without their records, so their own fields are checked as the whole parse does.
        out_block = getattr(request, outer[1]).add()
        block_error = _parse_dict({k: v for k, v in block.items() if k not in middle}, out_block, path)
        for s, scope in enumerate(_list_of(block, middle, error)):
            scope_path = f"{path}.{middle[0]}[{s}]"
            if not isinstance(scope, dict):
                raise DecodeError(error)
            out_scope = getattr(out_block, middle[1]).add()
            scope_error = block_error or _parse_dict(
                {k: v for k, v in scope.items() if k not in inner}, out_scope, scope_path
            )
            for k, record in enumerate(_list_of(scope, inner, error)):
                where = f"{scope_path}.{inner[0]}[{k}]"
                if signal is Signal.METRICS:
                    index = _salvage_metric(record, where, scope_error, out_scope.metrics.add(), report, index)
                    continue
                target = getattr(out_scope, inner[1]).add()
                problem = scope_error or _record(signal, record, target, where)
                if problem is not None:
                    target.Clear()
                    bad[index] = problem  # the scope's or resource's problem names its own place
                index += 1
    if bad:
        mask = np.zeros(index, np.bool_)
        mask[list(bad)] = True
        report.reject_rows(mask, "invalid_record", bad.__getitem__)
    return request, report


def _record(signal: Signal, record: Any, target: Message, where: str) -> str | None:
    """Parse one span or log record (its hex ids rewritten) into ``target``; the reason if it does not parse."""
    if not isinstance(record, dict):
        return f"{where}: must be a JSON object, got {type(record).__name__}"
    try:
        _rewrite_ids(record, where)
        if signal is Signal.TRACES:
            for link_path, link in _children(record, where, "links", "links"):
                _rewrite_ids(link, link_path)
    except DecodeError as exc:
        return str(exc)
    return _parse_dict(record, target, where)


def _salvage_metric(
    metric: Any, where: str, scope_error: str | None, out: Any, report: Report, index: int
) -> int:
    """Keep the data points of one metric that parse; returns the running count of data points."""
    kinds = [k for k in _METRIC_DATA if k in metric] if isinstance(metric, dict) else []
    data = metric[kinds[0]] if len(kinds) == 1 else None
    found = _get(data, "dataPoints", "data_points") if isinstance(data, dict) else None
    if data is None or found is None or not isinstance(found[1], list):
        # No countable points: one metric-sized rejection if it does not parse as a whole.
        problem = scope_error or _metric_whole(metric, out, where)
        if problem is not None:
            out.Clear()
            report.reject_records(1, "invalid_record", index, problem)
            return index + 1
        kind = out.WhichOneof("data")
        return index + (len(getattr(out, kind).data_points) if kind else 0)
    points_key, points = found
    header = {k: v for k, v in metric.items() if k != kinds[0]}
    header[kinds[0]] = {k: v for k, v in data.items() if k != points_key}
    problem = scope_error or _parse_dict(header, out, where)
    kind = out.WhichOneof("data")
    if problem is not None or kind is None:
        out.Clear()
        why = problem or f"{where}: {kinds[0]} is not a metric data object"
        report.reject_records(len(points), "invalid_record", index, f"{why} ({len(points)} data point(s) rejected)")
        return index + len(points)
    target = getattr(out, kind)
    cls = POINT_CLASSES[kind]
    for p, point in enumerate(points):
        parsed = cls()
        problem = _point(point, parsed, f"{where}.{kinds[0]}.{points_key}[{p}]")
        if problem is None:
            target.data_points.append(parsed)
        else:
            report.reject_records(1, "invalid_record", index, problem)
        index += 1
    return index


def _metric_whole(metric: Any, out: Message, where: str) -> str | None:
    if isinstance(metric, dict):
        try:
            for path, holder in _metric_id_holders(metric, where):
                _rewrite_ids(holder, path)
        except DecodeError as exc:
            return str(exc)
    return _parse_dict(metric, out, where)


def _metric_id_holders(metric: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in _METRIC_DATA:
        for p, point in _children(metric.get(kind), f"{where}.{kind}", "dataPoints", "data_points"):
            yield from _children(point, p, "exemplars", "exemplars")


def _point(point: Any, target: Message, where: str) -> str | None:
    if isinstance(point, dict):
        try:
            for path, holder in _children(point, where, "exemplars", "exemplars"):
                _rewrite_ids(holder, path)
        except DecodeError as exc:
            return str(exc)
    return _parse_dict(point, target, where)


def request_to_json(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of an export request (hex ids, camelCase keys), e.g. for tests and tools."""
    data: dict[str, Any] = json_format.MessageToDict(message)
    signal = next(s for s, cls in REQUESTS.items() if isinstance(message, cls))
    for _path, holder in _id_holders(signal, data):
        for camel, _snake in _ID_FIELDS:
            if camel in holder:
                holder[camel] = base64.b64decode(holder[camel]).hex()
    return data
