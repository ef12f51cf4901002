"""Requests protobuf cannot parse whole: keep the records that parse on their own, reject the rest.

OTLP's partial success lets a receiver accept the good records of a request and report the bad
ones. When a request fails to parse, it is parsed again shallowly (``views``: records as bytes) and
each span, log record or data point on its own; an unreadable one is rejected with its place and
why. A request whose structure around the records is broken cannot be split and stays an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors.otlp import views, wire
from collectors.otlp.tables import Report
from sovtel.records import Signal

POINT_CLASSES: dict[str, type[Message]] = {
    "gauge": NumberDataPoint,
    "sum": NumberDataPoint,
    "histogram": HistogramDataPoint,
    "exponential_histogram": ExponentialHistogramDataPoint,
    "summary": SummaryDataPoint,
}
# Fields of a metric's data message other than its points.
_DATA_FIELDS = {"sum": ("aggregation_temporality", "is_monotonic"), "histogram": ("aggregation_temporality",),
                "exponential_histogram": ("aggregation_temporality",)}
_PARSE_ERRORS = (ProtobufDecodeError, RecursionError)


def why(exc: BaseException) -> str:
    """What protobuf found wrong, without its 'Error parsing message with type …' preamble."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc).rpartition("': ")[2] or type(exc).__name__
    if "MaxDepth" in text:
        return "nested too deeply"
    if "UTF-8" in text:
        return "invalid UTF-8 in a string field"
    return text


def _parse(cls: type[Message], blob: bytes) -> Message:
    """``cls`` parsed from ``blob``; raises ProtobufDecodeError or RecursionError."""
    return cls.FromString(blob)


def _resource(view_resource: Any) -> Resource:
    # A view's resource is the real schema in another descriptor pool: move it by its bytes.
    resource: Resource = Resource.FromString(view_resource.SerializeToString())
    return resource


def request(signal: Signal, payload: bytes) -> tuple[Message, Report]:
    """The request with every unreadable record rejected in the report; raises wire.IrregularError if the
    structure around the records cannot be parsed either.

    Spans and log records that cannot be read stay in the request as empty placeholders (rejected
    rows in the report, left out of the table), so later checks still name each record's place.
    """
    if signal is Signal.METRICS:
        return _metrics(payload)
    traces = signal is Signal.TRACES
    view = wire.parse(views.TraceRecordsView if traces else views.LogsRecordsView, payload)
    req: Any = ExportTraceServiceRequest() if traces else ExportLogsServiceRequest()
    record_cls: type[Message] = Span if traces else LogRecord
    names = ("resourceSpans", "scopeSpans", "spans") if traces else ("resourceLogs", "scopeLogs", "logRecords")
    bad: dict[int, str] = {}
    index = 0
    for r, resource_block in enumerate(view.resource_spans if traces else view.resource_logs):
        out_resource = req.resource_spans.add() if traces else req.resource_logs.add()
        out_resource.resource.CopyFrom(_resource(resource_block.resource))
        scopes = resource_block.scope_spans if traces else resource_block.scope_logs
        for s, scope_block in enumerate(scopes):
            out_scope = out_resource.scope_spans.add() if traces else out_resource.scope_logs.add()
            target = out_scope.spans if traces else out_scope.log_records
            for k, blob in enumerate(scope_block.spans if traces else scope_block.log_records):
                try:
                    target.append(_parse(record_cls, blob))
                except _PARSE_ERRORS as exc:
                    target.add()
                    where = f"{names[0]}[{r}].{names[1]}[{s}].{names[2]}[{k}]"
                    bad[index] = f"{where}: not a valid {record_cls.DESCRIPTOR.name} ({why(exc)})"
                index += 1
    report = Report()
    if bad:
        mask = np.zeros(index, np.bool_)
        mask[list(bad)] = True
        report.reject_rows(mask, "invalid_record", bad.__getitem__)
    return req, report


def _metrics(payload: bytes) -> tuple[Message, Report]:
    view = wire.parse(views.MetricsRecordsView, payload)
    req = ExportMetricsServiceRequest()
    report = Report()
    index = 0  # data points so far, in request order (orders the reasons)
    for r, rm in enumerate(view.resource_metrics):
        out_rm = req.resource_metrics.add()
        out_rm.resource.CopyFrom(_resource(rm.resource))
        for s, sm in enumerate(rm.scope_metrics):
            out_sm = out_rm.scope_metrics.add()
            for m, blob in enumerate(sm.metrics):
                where = f"resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]"
                try:
                    metric: Any = _parse(Metric, blob)
                except _PARSE_ERRORS:
                    index = _metric_parts(blob, where, out_sm.metrics.add(), report, index)
                    continue
                out_sm.metrics.append(metric)
                kind = metric.WhichOneof("data")
                index += len(getattr(metric, kind).data_points) if kind else 0
    return req, report


def _metric_parts(blob: bytes, where: str, out: Any, report: Report, index: int) -> int:
    """Keep the data points of an unreadable metric that parse on their own; returns the running index."""
    try:
        parts = views.MetricPartsView.FromString(blob)
    except _PARSE_ERRORS as exc:
        report.reject_records(1, "invalid_record", index, f"{where}: not a valid Metric ({why(exc)}); "
                              "its data points cannot be counted, counted as one")
        return index + 1
    kind = parts.WhichOneof("data")
    if kind is None:
        return index  # no data points: nothing is lost (its unreadable metadata is not stored)
    points = getattr(parts, kind).data_points
    texts = []
    for name in ("name", "description", "unit"):
        try:
            texts.append(getattr(parts, name).decode("utf-8"))
        except UnicodeDecodeError:
            report.reject_records(len(points), "invalid_record", index,
                                  f"{where}.{name}: invalid UTF-8 (its {len(points)} data point(s) rejected)")
            return index + len(points)
    out.name, out.description, out.unit = texts
    data = getattr(out, kind)
    data.SetInParent()
    for name in _DATA_FIELDS.get(kind, ()):
        setattr(data, name, getattr(getattr(parts, kind), name))
    cls = POINT_CLASSES[kind]
    for p, point_blob in enumerate(points):
        try:
            data.data_points.append(_parse(cls, point_blob))
        except _PARSE_ERRORS as exc:
            report.reject_records(1, "invalid_record", index, f"{where}.{kind}.dataPoints[{p}]: not a valid "
                                  f"{cls.DESCRIPTOR.name} ({why(exc)})")
        index += 1
    # If every point parsed, the metric failed in its metadata, which is not stored: nothing is lost.
    return index
