"""Wire-compatible "views" of the OTLP request messages, for the columnar fast path.

The views are the real OTLP schemas with the spans and log records re-declared as ``bytes``.
protobuf parses (and checks) everything around them as before, but hands each span or log record
back as its raw payload, which ``wire`` then decodes and checks for a whole request at once with
numpy instead of building one Python object per field. The same views let a request with a few
unreadable records keep the others: each record is then parsed on its own (see ``salvage``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

# message full name -> fields re-declared as bytes
_RECORDS: dict[str, frozenset[str]] = {
    "opentelemetry.proto.trace.v1.ScopeSpans": frozenset({"spans"}),
    "opentelemetry.proto.logs.v1.ScopeLogs": frozenset({"log_records"}),
    "opentelemetry.proto.metrics.v1.ScopeMetrics": frozenset({"metrics"}),
}
_POINTS = frozenset({"data_points"})
# A metric whose every part is bytes but its structure: its data points can be counted and parsed
# one by one even when its name is not valid UTF-8 or one point is corrupt.
_METRIC_PARTS: dict[str, frozenset[str]] = {
    "opentelemetry.proto.metrics.v1.Metric": frozenset({"name", "description", "unit", "metadata"}),
    "opentelemetry.proto.metrics.v1.Gauge": _POINTS,
    "opentelemetry.proto.metrics.v1.Sum": _POINTS,
    "opentelemetry.proto.metrics.v1.Histogram": _POINTS,
    "opentelemetry.proto.metrics.v1.ExponentialHistogram": _POINTS,
    "opentelemetry.proto.metrics.v1.Summary": _POINTS,
}


def _file_proto(module: ModuleType, as_bytes: dict[str, frozenset[str]]) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    package = fdp.package
    for msg in fdp.message_type:
        fields = as_bytes.get(f"{package}.{msg.name}", frozenset())
        for field in msg.field:
            if field.name in fields:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
    return fdp


def _build_pool(as_bytes: dict[str, frozenset[str]]) -> descriptor_pool.DescriptorPool:
    # A private pool: the views reuse the real full names without clashing with the real messages.
    pool = descriptor_pool.DescriptorPool()
    modules = (common_pb2, resource_pb2, trace_pb2, logs_pb2, metrics_pb2)
    for module in (*modules, trace_service_pb2, logs_service_pb2, metrics_service_pb2):
        pool.Add(_file_proto(module, as_bytes))
    return pool


def _view(pool: descriptor_pool.DescriptorPool, full_name: str) -> Any:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


_RECORDS_POOL = _build_pool(_RECORDS)

# Shallow: each span / log record comes back as its serialized bytes.
TraceRecordsView: Any = _view(_RECORDS_POOL, "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest")
LogsRecordsView: Any = _view(_RECORDS_POOL, "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest")
MetricsRecordsView: Any = _view(
    _RECORDS_POOL, "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
)
# One metric with its name, metadata and each data point as bytes.
MetricPartsView: Any = _view(_build_pool(_METRIC_PARTS), "opentelemetry.proto.metrics.v1.Metric")
