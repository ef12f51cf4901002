"""Data points of an ExportMetricsServiceRequest as METRIC_SCHEMA rows, one per point (exact path only).

Histograms keep count, sum, bounds and bucket counts (``value`` is the sum); exponential
histograms are converted to explicit bounds (negative buckets and the zero bucket count into the
first bucket); summaries keep count and sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from collectors import semconv
from collectors.otlp.attributes import attributes_from_messages, project
from collectors.otlp.tables import Resources, nanos, schema_table, timestamps, typed_columns
from sovtel.records import METRIC_SCHEMA


class _Points:
    """Per-data-point columns, appended to in order."""

    def __init__(self) -> None:
        self.time: list[int] = []
        self.start: list[int] = []
        self.name: list[str] = []
        self.kind: list[str] = []
        self.unit: list[str] = []
        self.monotonic: list[bool] = []
        self.value: list[float] = []
        self.count: list[int] = []
        self.sum: list[float] = []
        self.bounds: list[list[float]] = []
        self.buckets: list[list[int]] = []
        self.attrs: list[Sequence[KeyValue]] = []

    def add(
        self,
        metric: Any,
        *,
        kind: str,
        point: Any,
        value: float,
        count: int = 0,
        total: float = 0.0,
        bounds: list[float] | None = None,
        buckets: list[int] | None = None,
        monotonic: bool = False,
    ) -> None:
        self.time.append(point.time_unix_nano)
        self.start.append(point.start_time_unix_nano)
        self.name.append(metric.name)
        self.kind.append(kind)
        self.unit.append(metric.unit)
        self.monotonic.append(monotonic)
        self.value.append(value)
        self.count.append(count)
        self.sum.append(total)
        self.bounds.append(bounds or [])
        self.buckets.append(buckets or [])
        self.attrs.append(point.attributes)


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else float(point.as_double)


def _exponential(point: Any) -> tuple[list[float], list[int]]:
    positive = point.positive
    counts = list(positive.bucket_counts)
    if not counts:
        return [], [point.zero_count + sum(point.negative.bucket_counts)]
    base = 2.0 ** (2.0**-point.scale)
    lower = [_power(base, positive.offset + k) for k in range(len(counts) + 1)]
    return lower, [point.zero_count + sum(point.negative.bucket_counts), *counts, 0]


def _power(base: float, exponent: int) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf


def metric_table(req: Any) -> pa.Table:
    """The METRIC_SCHEMA table of a parsed ExportMetricsServiceRequest, one row per data point."""
    resources: list[Sequence[KeyValue]] = []
    per_resource: list[int] = []
    pts = _Points()
    for rm in req.resource_metrics:
        resources.append(rm.resource.attributes)
        before = len(pts.time)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                if which == "gauge":
                    for p in m.gauge.data_points:
                        pts.add(m, kind="gauge", point=p, value=_number(p))
                elif which == "sum":
                    mono = m.sum.is_monotonic
                    for p in m.sum.data_points:
                        pts.add(m, kind="sum", point=p, value=_number(p), monotonic=mono)
                elif which == "histogram":
                    for p in m.histogram.data_points:
                        pts.add(
                            m,
                            kind="histogram",
                            point=p,
                            value=p.sum,
                            count=p.count,
                            total=p.sum,
                            bounds=list(p.explicit_bounds),
                            buckets=list(p.bucket_counts),
                        )
                elif which == "exponential_histogram":
                    for p in m.exponential_histogram.data_points:
                        bounds, buckets = _exponential(p)
                        pts.add(
                            m,
                            kind="exp_histogram",
                            point=p,
                            value=p.sum,
                            count=p.count,
                            total=p.sum,
                            bounds=bounds,
                            buckets=buckets,
                        )
                elif which == "summary":
                    for p in m.summary.data_points:
                        pts.add(m, kind="summary", point=p, value=p.sum, count=p.count, total=p.sum)
        per_resource.append(len(pts.time) - before)
    n = len(pts.time)
    proj = project(attributes_from_messages(pts.attrs), semconv.METRIC_ATTRIBUTES)
    res = Resources(METRIC_SCHEMA, resources, per_resource)
    typed = typed_columns(n, METRIC_SCHEMA, [proj])
    t = nanos(pts.time)
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": timestamps(t),
        "start_timestamp": timestamps(np.where(nanos(pts.start) != 0, nanos(pts.start), t)),
        "metric_name": pa.array(pts.name, pa.string()),
        "metric_kind": pa.array(pts.kind, pa.string()),
        "unit": pa.array(pts.unit, pa.string()),
        "is_monotonic": pa.array(pts.monotonic, pa.bool_()),
        "value": pa.array(pts.value, pa.float64()),
        "count": pa.array(pts.count, pa.uint64()),
        "sum": pa.array(pts.sum, pa.float64()),
        "bounds": pa.array(pts.bounds, pa.list_(pa.float64())),
        "bucket_counts": pa.array(pts.buckets, pa.list_(pa.uint64())),
        "resource_attributes": res.attributes,
        "attributes": proj.rest,
    }
    return schema_table(METRIC_SCHEMA, n, columns)

