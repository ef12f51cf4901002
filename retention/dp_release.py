"""The differential-privacy release job: a tier's chat spans of a time window, published as DP aggregates
(counts, means, p95) per tenant, model and window into another database, each tenant-window paid from
its privacy budget in the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from processors import dp
from retention.dp_ledger import ClickHouseLedger
from retention.dp_policy import ALL_TENANTS, BudgetPolicy
from storage.backend import Store
from storage.migrate import SchemaSettings, migrate

# The statistics a standard release publishes; bounds are explicit (a PrivacyLeakWarning is an error).
STANDARD_RELEASE: tuple[dp.Statistic, ...] = (
    dp.Statistic("count"),
    dp.Statistic("mean", "input_tokens", (0.0, 4_096.0)),
    dp.Statistic("mean", "output_tokens", (0.0, 2_048.0)),
    dp.Statistic("quantile", "latency_s", (0.0, 30.0), 0.95),
)


@dataclass(frozen=True)
class ReleaseOptions:
    """What to release: spans of ``database`` in [start, end), into ``to_database`` (same store), per
    ``bucket_s`` window, at ``epsilon`` per tenant-window, paid from the cap the store's budget policy
    puts in force (``retention.dp_policy``). ``budget_per_window`` can only lower that cap for this run."""

    start: dt.datetime
    end: dt.datetime
    database: str = "sovtel"
    to_database: str = "public"
    bucket_s: int = 3600
    epsilon: float = 1.0
    budget_per_window: float | None = None
    name: str = "usage"
    statistics: tuple[dp.Statistic, ...] = STANDARD_RELEASE

    def __post_init__(self) -> None:
        # Database names go into SQL text: only plain identifiers pass.
        for label, value in (("database", self.database), ("to_database", self.to_database)):
            if not value.isidentifier():
                raise ValueError(f"{label} {value!r} must be a plain identifier")
        dp.check_epsilon(self.epsilon)
        if self.budget_per_window is not None and not self.budget_per_window > 0:
            raise ValueError("the budget for this run must be a positive epsilon")


@dataclass
class ReleaseOutcome:
    """How many spans were read and aggregate rows written where, and which tenant-windows were refused."""

    spans: int
    released_rows: int
    epsilon: float
    to: str
    refused: list[tuple[str, dt.datetime]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no tenant-window was refused."""
        return not self.refused

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"spans": self.spans, "released_rows": self.released_rows, "epsilon": self.epsilon, "to": self.to,
                "refused": [{"tenant_id": tn, "window_start": w.isoformat()} for tn, w in self.refused]}

    def describe(self) -> str:
        """One line for a person."""
        return (f"released {self.released_rows} aggregate rows from {self.spans} spans into {self.to} "
                f"(epsilon {self.epsilon:g} per tenant-window); refused {len(self.refused)} tenant-window(s)")


def release_spans(store: Store, options: ReleaseOptions) -> ReleaseOutcome:
    """Publish the release into ``{to_database}.dp_releases``; the budget ledger lives in the source database.

    A tenant-window whose budget is exhausted under the cap in force is refused and the refusal
    recorded; the rest is released. Raises StoreError when the store fails, PrivacyError when a statistic is not DP.
    """
    spec = dp.ReleaseSpec(options.name, options.statistics, options.epsilon, window_s=options.bucket_s,
                          group_by=("request_model",))
    if options.to_database != options.database:
        migrate(store, SchemaSettings(database=options.to_database, aiact_database=f"{options.to_database}_aiact"))
    spans = store.query_arrow(
        f"SELECT timestamp, tenant_id, request_model, input_tokens, output_tokens, duration_ns, ttft_s "
        f"FROM {options.database}.spans WHERE operation = 'chat' AND timestamp >= {{start:DateTime64(9)}} "
        f"AND timestamp < {{end:DateTime64(9)}}",
        {"start": options.start, "end": options.end},
    )
    # The caps are read once, before anything is charged: a release is paid under one policy.
    caps = BudgetPolicy(store, options.database).caps(lower_to=options.budget_per_window)
    default = caps(ALL_TENANTS)
    ledger = dp.BudgetLedger(ClickHouseLedger(store, options.database), default.per_window, default.window_s,
                             caps=caps)
    with dp.strict_privacy():
        result = dp.release(spans, spec, ledger)
    t = result.table
    n = t.num_rows
    to = f"{options.to_database}.dp_releases"
    if n:
        out = pa.table({
            "released_at": pa.array([dt.datetime.now(dt.UTC)] * n, type=pa.timestamp("ms", tz="UTC")),
            "release": [options.name] * n, "source": [options.database] * n,
            "tenant_id": t.column("tenant_id"), "window_start": t.column("window_start"),
            "window_s": pa.array([options.bucket_s] * n, type=pa.uint32()), "group": t.column("group"),
            "statistic": t.column("statistic"), "value": t.column("value"), "epsilon": t.column("epsilon"),
        })
        store.insert_arrow(to, out)
    return ReleaseOutcome(spans.num_rows, n, options.epsilon, to, list(result.refused))
