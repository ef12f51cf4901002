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
from collectors.otlp.limits import ORIGINAL_TIME, Clock
from collectors.otlp.tables import (
    Report,
    Resources,
    nanos,
    replace_times,
    schema_table,
    timestamps,
    typed_columns,
    with_entry,
)
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


def metric_table(req: Any, clock: Clock | None = None, report: Report | None = None) -> pa.Table:
    """The METRIC_SCHEMA table of a parsed ExportMetricsServiceRequest, one row per data point.

    A histogram point whose bucket counts do not match its bounds is rejected in ``report`` (it is
    still a row here; see ``tables.finish``). With ``clock``, a point time that is missing or too far
    ahead becomes the receive time, the original kept in an attribute; without, times are kept as sent.
    """
    report = report if report is not None else Report()
    resources: list[Sequence[KeyValue]] = []
    per_resource: list[int] = []
    pts = _Points()
    bad_histograms: dict[int, str] = {}
    for r, rm in enumerate(req.resource_metrics):
        resources.append(rm.resource.attributes)
        before = len(pts.time)
        for s, sm in enumerate(rm.scope_metrics):
            for i, m in enumerate(sm.metrics):
                which = m.WhichOneof("data")
                if which == "gauge":
                    for p in m.gauge.data_points:
                        pts.add(m, kind="gauge", point=p, value=_number(p))
                elif which == "sum":
                    mono = m.sum.is_monotonic
                    for p in m.sum.data_points:
                        pts.add(m, kind="sum", point=p, value=_number(p), monotonic=mono)
                elif which == "histogram":
                    for k, p in enumerate(m.histogram.data_points):
                        if len(p.bucket_counts) and len(p.bucket_counts) != len(p.explicit_bounds) + 1:
                            bad_histograms[len(pts.time)] = (
                                f"resourceMetrics[{r}].scopeMetrics[{s}].metrics[{i}].histogram.dataPoints[{k}]: "
                                f"{len(p.bucket_counts)} bucket counts for {len(p.explicit_bounds)} explicit bounds "
                                "(must be one more than the bounds)"
                            )
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
    if bad_histograms:
        bad = np.zeros(n, np.bool_)
        bad[list(bad_histograms)] = True
        report.reject_rows(bad, "invalid_histogram", bad_histograms.__getitem__)
    t = nanos(pts.time)
    start = nanos(pts.start)
    attributes = proj.rest
    if clock is not None:
        sent = t
        t, replaced = replace_times(t, clock, report)
        attributes = with_entry(attributes, replaced, ORIGINAL_TIME, [str(v) for v in sent[replaced].tolist()])
        # A start after the (possibly replaced) time is as unusable as a missing one.
        start = np.where(start > t, np.uint64(0), start)
    columns = {
        **typed,
        **res.under(typed),
        "timestamp": timestamps(t),
        "start_timestamp": timestamps(np.where(start != 0, start, t)),
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
        "attributes": attributes,
    }
    return schema_table(METRIC_SCHEMA, n, columns)

