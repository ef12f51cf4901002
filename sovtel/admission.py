"""Admission by retention: rows their sinks would delete on arrival are refused before they are queued.

A sink keeps personal rows (spans, logs) ``personal_days`` and operational rows (metrics)
``operational_days``, as table TTLs on ``timestamp``. A row older than that is deleted by the
store's TTL right after it was acknowledged — a silent discard. The pipeline drops such rows
before queueing (reason ``older_than_retention``) and tells the client through partial success.
A row is refused only when no sink it is routed to would keep it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sovtel.records import Batch, Signal
from sovtel.routing import TIERS, normalise_tiers

OLDER_THAN_RETENTION = "older_than_retention"

# Which retention each signal's table has (storage/migrations: spans and logs are personal, metrics operational).
PERSONAL_SIGNALS = frozenset({Signal.TRACES, Signal.LOGS})


@runtime_checkable
class RetentionSection(Protocol):
    """The ``retention:`` section a sink's configuration declares (days per kind of table)."""

    personal_days: int
    operational_days: int


def sink_retention(exporter_config: object, signal: Signal) -> dt.timedelta | None:
    """How long the sink ``exporter_config`` configures keeps rows of ``signal``; None if it declares none."""
    section = getattr(exporter_config, "retention", None)
    if not isinstance(section, RetentionSection):
        return None
    days = section.personal_days if signal in PERSONAL_SIGNALS else section.operational_days
    return dt.timedelta(days=days)


class RetentionGate:
    """Drops rows older than the longest retention among the sinks their tier is routed to.

    Built once per pipeline from each sink's permitted tiers and retention; ``admit`` runs on
    receiver threads with columnar comparisons only. A tier routed to a sink without a declared
    retention (or to no sink: the router drops it with its own reason) is not limited here.
    """

    def __init__(
        self,
        sink_tiers: Mapping[str, frozenset[str]],
        retention: Mapping[str, dt.timedelta | None],
    ) -> None:
        limits: dict[str, int | None] = {}
        for sink, tiers in sink_tiers.items():
            keep = retention.get(sink)
            for tier in tiers:
                ns = None if keep is None else int(keep.total_seconds()) * 1_000_000_000
                if tier not in limits:
                    limits[tier] = ns
                elif limits[tier] is not None:
                    # Unlimited wins; else the longest-keeping sink decides.
                    limits[tier] = None if ns is None else max(ns, limits[tier] or 0)
        self.limits_ns: dict[str, int] = {t: ns for t, ns in limits.items() if ns is not None}

    @property
    def active(self) -> bool:
        """Whether any tier is limited (else ``admit`` returns batches untouched)."""
        return bool(self.limits_ns)

    def admit(self, batch: Batch, now_ns: int | None = None) -> tuple[Batch, int]:
        """``batch`` without rows older than their tier's retention, and how many were dropped."""
        table = batch.table
        if not self.limits_ns or table.num_rows == 0 or "timestamp" not in table.column_names:
            return batch, 0
        if "tier" not in table.column_names:
            return batch, 0  # the router delivers nothing without a tier column, and says so
        now = time.time_ns() if now_ns is None else now_ns
        ts = pc.cast(table.column("timestamp"), pa.int64()).to_numpy()
        limits = set(self.limits_ns.values())
        if len(limits) == 1 and set(self.limits_ns) >= set(TIERS):
            old = ts < now - limits.pop()
        else:
            tier = normalise_tiers(table).column("tier")
            old = np.zeros(table.num_rows, np.bool_)
            for t, ns in self.limits_ns.items():
                old |= pc.equal(tier, pa.scalar(t)).to_numpy(zero_copy_only=False) & (ts < now - ns)
        n = int(old.sum())
        if n == 0:
            return batch, 0
        return batch.replace(table.filter(pa.array(~old))), n
