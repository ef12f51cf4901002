"""Differential privacy: aggregates with explicit bounds (diffprivlib), optional per-record Laplace
noise on numeric fields, and a privacy-budget ledger per tenant and window over a backend (in memory
here; the store's backend is the jobs' ``retention.dp_ledger``).

Rules: bounds are always given (a diffprivlib ``PrivacyLeakWarning`` is raised as an error);
epsilon per release must lie in the configured range (default 0.1 to 1.0); a release that would
overspend a tenant's window budget is refused and the refusal is recorded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import SCHEMAS, Batch

DEFAULT_EPSILON_RANGE: tuple[float, float] = (0.1, 1.0)


class PrivacyError(Exception):
    """A release would not be differentially private as configured."""


class BoundsRequiredError(PrivacyError):
    """Bounds were missing, or diffprivlib warned that it derived them from the data."""


class EpsilonOutOfRangeError(PrivacyError, ValueError):
    """Epsilon outside the configured range."""


class BudgetExhaustedError(PrivacyError):
    """The tenant's budget for the window cannot pay for the release (the refusal is recorded)."""


def check_epsilon(epsilon: float, allowed: tuple[float, float] = DEFAULT_EPSILON_RANGE) -> float:
    """``epsilon`` if it lies in ``allowed`` (inclusive); otherwise EpsilonOutOfRangeError."""
    lo, hi = allowed
    if not (math.isfinite(epsilon) and lo <= epsilon <= hi):
        raise EpsilonOutOfRangeError(f"epsilon {epsilon} is outside the allowed range [{lo}, {hi}]")
    return epsilon


@contextlib.contextmanager
def strict_privacy() -> Iterator[None]:
    """Run diffprivlib with its PrivacyLeakWarning raised as BoundsRequiredError."""
    from diffprivlib.utils import PrivacyLeakWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        try:
            yield
        except PrivacyLeakWarning as exc:
            raise BoundsRequiredError(str(exc)) from exc


StatisticKind = Literal["count", "sum", "mean", "histogram", "quantile"]


@dataclass(frozen=True)
class Statistic:
    """One aggregate of a release; every statistic of a value needs explicit ``bounds``."""

    kind: StatisticKind
    column: str | None = None
    bounds: tuple[float, float] | None = None
    quantile: float | None = None
    bins: int = 10

    def __post_init__(self) -> None:
        if self.kind == "count":
            return
        if self.column is None:
            raise ValueError(f"a {self.kind} needs a column")
        if self.bounds is None:
            raise BoundsRequiredError(f"{self.kind} of {self.column}: explicit bounds are required")
        lo, hi = self.bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise BoundsRequiredError(f"{self.kind} of {self.column}: bounds must be finite with lower < upper")
        if self.kind == "quantile" and (self.quantile is None or not 0.0 <= self.quantile <= 1.0):
            raise ValueError("a quantile needs quantile in [0, 1]")
        if self.kind == "histogram" and self.bins < 1:
            raise ValueError("a histogram needs at least one bin")

    @property
    def label(self) -> str:
        """``mean(output_tokens)``, ``quantile_0.95(latency_s)``, ``count``."""
        if self.kind == "count":
            return "count"
        kind = f"quantile_{self.quantile:g}" if self.kind == "quantile" else self.kind
        return f"{kind}({self.column})"


def dp_statistic(
    values: np.ndarray, stat: Statistic, epsilon: float, random_state: Any = None
) -> list[tuple[str, float]]:
    """The DP value(s) of one statistic over ``values``: (label, value) pairs (one per bin for a
    histogram). diffprivlib's own accountant is a throwaway here: the ledger is the budget."""
    from diffprivlib import tools
    from diffprivlib.accountant import BudgetAccountant

    acct = BudgetAccountant()
    with strict_privacy():
        if stat.kind == "count":
            # Not tools.count_nonzero: it truncates its noise at the array's length, so the true
            # count is an upper bound of every answer (biased, and the maximum reveals it). The
            # geometric mechanism with sensitivity 1, clipped at 0 afterwards (post-processing), is not.
            from diffprivlib.mechanisms import Geometric

            mech = Geometric(epsilon=epsilon, sensitivity=1, random_state=random_state)
            return [(stat.label, float(max(0, mech.randomise(len(values)))))]
        assert stat.bounds is not None
        if stat.kind == "sum":
            v = tools.sum(values, epsilon=epsilon, bounds=stat.bounds, random_state=random_state, accountant=acct)
        elif stat.kind == "mean":
            v = tools.mean(values, epsilon=epsilon, bounds=stat.bounds, random_state=random_state, accountant=acct)
        elif stat.kind == "quantile":
            v = tools.quantile(
                values, stat.quantile, epsilon=epsilon, bounds=stat.bounds, random_state=random_state, accountant=acct
            )
        else:
            counts, edges = tools.histogram(
                values, epsilon=epsilon, bins=stat.bins, range=stat.bounds, random_state=random_state, accountant=acct
            )
            return [(f"{stat.label}[{edges[i]:g},{edges[i + 1]:g})", float(c)) for i, c in enumerate(counts)]
    return [(stat.label, float(v))]


# --- budget ledger ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerEntry:
    """One charge or refusal."""

    at: dt.datetime
    tenant_id: str
    window_start: dt.datetime
    window_s: int
    release: str
    epsilon: float
    outcome: Literal["charged", "refused"]
    reason: str = ""
    node: str = ""


@dataclass(frozen=True)
class BudgetCap:
    """The epsilon a tenant may spend per budget window of ``window_s`` seconds (epoch aligned)."""

    per_window: float
    window_s: int

    def __post_init__(self) -> None:
        if not (self.per_window > 0 and math.isfinite(self.per_window)) or self.window_s <= 0:
            raise ValueError("a budget cap needs a positive, finite epsilon and a positive window")


@dataclass(frozen=True)
class BudgetStatus:
    """Spent and remaining budget of one tenant in one window, against the cap in force for it."""

    tenant_id: str
    window_start: dt.datetime
    spent: float
    remaining: float
    releases: int
    refusals: int
    budget: float = 0.0


class LedgerBackend(Protocol):
    """Where ledger entries live."""

    def append(self, entry: LedgerEntry) -> None:
        """Record one entry durably."""
        ...

    def spent(self, tenant_id: str, window_start: dt.datetime, window_s: int | None = None) -> float:
        """Epsilon charged so far for a tenant and window; with ``window_s``, every charge whose budget
        window overlaps [window_start, window_start + window_s), so a change of window length never
        starts a fresh budget."""
        ...

    def windows(self, tenant_id: str | None = None) -> list[tuple[str, dt.datetime, float, int, int]]:
        """(tenant, window start, spent, releases, refusals) per tenant and window, newest first."""
        ...


class InMemoryLedger:
    """A ledger for tests and dry runs; forgets everything on exit."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []

    def append(self, entry: LedgerEntry) -> None:
        """Keep the entry."""
        self.entries.append(entry)

    def spent(self, tenant_id: str, window_start: dt.datetime, window_s: int | None = None) -> float:
        """Sum of charged epsilon (over overlapping budget windows when ``window_s`` is given)."""
        end = window_start + dt.timedelta(seconds=window_s or 0)

        def counts(e: LedgerEntry) -> bool:
            if window_s is None:
                return e.window_start == window_start
            return e.window_start < end and e.window_start + dt.timedelta(seconds=e.window_s) > window_start

        return sum(e.epsilon for e in self.entries if e.tenant_id == tenant_id and e.outcome == "charged" and counts(e))

    def windows(self, tenant_id: str | None = None) -> list[tuple[str, dt.datetime, float, int, int]]:
        """Aggregated per tenant and window."""
        acc: dict[tuple[str, dt.datetime], list[float]] = {}
        for e in self.entries:
            if tenant_id is not None and e.tenant_id != tenant_id:
                continue
            row = acc.setdefault((e.tenant_id, e.window_start), [0.0, 0, 0])
            if e.outcome == "charged":
                row[0] += e.epsilon
                row[1] += 1
            else:
                row[2] += 1
        return sorted(
            ((t, w, r[0], int(r[1]), int(r[2])) for (t, w), r in acc.items()), key=lambda x: (x[1], x[0]), reverse=True
        )


class BudgetLedger:
    """Charges releases against a per-tenant, per-window epsilon budget; refuses and records when
    a release does not fit. One process should charge a given tenant at a time (the check and the
    charge are atomic within this object, not across processes).

    ``caps`` gives the cap in force per tenant (the store's budget policy, see
    ``retention.dp_policy``); without it every tenant has ``budget_per_window`` per ``window_s``.
    """

    def __init__(
        self, backend: LedgerBackend, budget_per_window: float, window_s: int = 86_400, node: str = "",
        caps: Callable[[str], BudgetCap] | None = None,
    ) -> None:
        if budget_per_window <= 0 or window_s <= 0:
            raise ValueError("budget_per_window and window_s must be positive")
        self.backend = backend
        self.budget = budget_per_window
        self.window_s = window_s
        self.node = node
        self._caps = caps
        self._lock = threading.Lock()

    def cap(self, tenant_id: str) -> BudgetCap:
        """The cap in force for ``tenant_id``."""
        return self._caps(tenant_id) if self._caps is not None else BudgetCap(self.budget, self.window_s)

    def window_of(self, when: dt.datetime, tenant_id: str | None = None) -> dt.datetime:
        """The start of the (tenant's) budget window containing ``when`` (UTC, epoch aligned)."""
        window_s = self.cap(tenant_id).window_s if tenant_id is not None else self.window_s
        ts = int(when.timestamp())
        return dt.datetime.fromtimestamp(ts - ts % window_s, tz=dt.UTC)

    def charge(self, tenant_id: str, window_start: dt.datetime, epsilon: float, release: str) -> bool:
        """Charge ``epsilon``; False (and a recorded refusal) if it would exceed the tenant's cap."""
        with self._lock:
            cap = self.cap(tenant_id)
            # Charges of every overlapping window count: changing the window length never resets the budget.
            spent = self.backend.spent(tenant_id, window_start, cap.window_s)
            now = dt.datetime.now(dt.UTC)
            # A tiny tolerance so that e.g. ten charges of 0.1 fit a budget of 1.0 despite float sums.
            if spent + epsilon > cap.per_window + 1e-9:
                self.backend.append(
                    LedgerEntry(now, tenant_id, window_start, cap.window_s, release, epsilon, "refused",
                                f"budget exhausted: spent {spent:.4g} of {cap.per_window:.4g}", self.node)
                )  # fmt: skip
                return False
            self.backend.append(
                LedgerEntry(now, tenant_id, window_start, cap.window_s, release, epsilon, "charged", "", self.node)
            )
            return True

    def require(self, tenant_id: str, window_start: dt.datetime, epsilon: float, release: str) -> None:
        """Charge ``epsilon`` or raise BudgetExhaustedError (the refusal is recorded first)."""
        if not self.charge(tenant_id, window_start, epsilon, release):
            raise BudgetExhaustedError(
                f"privacy budget of tenant {tenant_id} for the window at {window_start:%Y-%m-%d %H:%M} is exhausted"
            )

    def status(self, tenant_id: str | None = None) -> list[BudgetStatus]:
        """Spent and remaining budget per tenant and window."""
        out = []
        for t, w, spent, n, refused in self.backend.windows(tenant_id):
            budget = self.cap(t).per_window
            out.append(BudgetStatus(t, w, spent, max(0.0, budget - spent), n, refused, budget))
        return out


# --- releases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseSpec:
    """What a release publishes per tenant, group and window, and its epsilon per tenant-window.

    Groups within one tenant and window (e.g. models) hold disjoint records, so by parallel
    composition the release costs ``epsilon`` once per tenant and window; the statistics of one
    group share it (sequential composition, split evenly).
    """

    name: str
    statistics: tuple[Statistic, ...]
    epsilon: float
    window_s: int = 3600
    group_by: tuple[str, ...] = ("request_model",)


@dataclass
class ReleaseResult:
    """The released rows and the tenant-windows that were refused."""

    table: pa.Table
    refused: list[tuple[str, dt.datetime]] = field(default_factory=list)


RELEASE_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string()),
        pa.field("window_start", pa.timestamp("s", tz="UTC")),
        pa.field("group", pa.string()),
        pa.field("statistic", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("epsilon", pa.float64()),
    ]
)


def _derived(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column, or one derived from spans: ``latency_s`` (duration), ``ttft_s``."""
    if column == "latency_s":
        return np.asarray(table.column("duration_ns").to_numpy(), dtype=np.float64) / 1e9
    return np.asarray(pc.fill_null(table.column(column), 0).to_numpy(), dtype=np.float64)


def release(
    table: pa.Table,
    spec: ReleaseSpec,
    ledger: BudgetLedger,
    epsilon_range: tuple[float, float] = DEFAULT_EPSILON_RANGE,
    random_state: Any = None,
) -> ReleaseResult:
    """DP aggregates of ``table`` (spans) per tenant, window and group, each tenant-window paid
    from its budget; a tenant-window whose budget is exhausted is refused (and recorded), the
    rest is released. The set of groups present is treated as public (as usual for DP group-by)."""
    check_epsilon(spec.epsilon, epsilon_range)
    if not spec.statistics:
        raise ValueError("a release needs at least one statistic")
    if isinstance(random_state, int):
        # One generator for the whole release: a bare seed would repeat the same noise per call.
        random_state = np.random.RandomState(random_state)
    per_stat = spec.epsilon / len(spec.statistics)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy() // 1_000_000_000
    windows = ts - ts % spec.window_s
    tenants = table.column("tenant_id").to_pylist()
    group_columns = [table.column(g).to_pylist() for g in spec.group_by]
    groups = (
        ["|".join(str(v) for v in key) for key in zip(*group_columns, strict=True)]
        if group_columns
        else [""] * table.num_rows
    )
    columns = {s.column: _derived(table, s.column) for s in spec.statistics if s.column is not None}
    index: dict[tuple[str, int], dict[str, list[int]]] = {}
    for i, (t, w, g) in enumerate(zip(tenants, windows.tolist(), groups, strict=True)):
        index.setdefault((t, w), {}).setdefault(g, []).append(i)
    out: dict[str, list[Any]] = {f.name: [] for f in RELEASE_SCHEMA}
    result = ReleaseResult(RELEASE_SCHEMA.empty_table())
    for (tenant, w), by_group in sorted(index.items()):
        start = dt.datetime.fromtimestamp(w, tz=dt.UTC)
        # The budget window (e.g. a day) may hold many release windows (e.g. hours): each is paid for.
        if not ledger.charge(tenant, ledger.window_of(start, tenant), spec.epsilon, spec.name):
            result.refused.append((tenant, start))
            continue
        for group, rows in sorted(by_group.items()):
            idx = np.asarray(rows)
            for stat in spec.statistics:
                values = columns[stat.column][idx] if stat.column is not None else np.empty(len(idx))
                for label, value in dp_statistic(values, stat, per_stat, random_state):
                    out["tenant_id"].append(tenant)
                    out["window_start"].append(start)
                    out["group"].append(group)
                    out["statistic"].append(label)
                    out["value"].append(value)
                    out["epsilon"].append(per_stat)
    result.table = pa.table(out, schema=RELEASE_SCHEMA)
    return result


# --- per-record noise (the ``dp`` processor) --------------------------------------------------
def laplace_noise(n: int, sensitivity: float, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of Laplace noise with scale sensitivity / epsilon, vectorised."""
    return rng.laplace(0.0, sensitivity / epsilon, size=n)


class FieldNoise(ComponentConfig):
    """Laplace noise on one numeric column: values are clipped to [lower, upper] (the sensitivity
    is upper - lower), noised, and clipped again (post-processing keeps the guarantee)."""

    column: str
    lower: float
    upper: float
    epsilon: float = Field(gt=0)


class BudgetConfig(ComponentConfig):
    """The release budget: epsilon per tenant and window, and where the ledger lives."""

    per_window: float = Field(default=3.0, gt=0)
    window_s: int = Field(default=86_400, gt=0)
    database: str = Field(default="sovtel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Config(ComponentConfig):
    """Per-record perturbation of numeric fields, the allowed epsilon range, and the budget."""

    epsilon_min: float = Field(default=DEFAULT_EPSILON_RANGE[0], gt=0)
    epsilon_max: float = Field(default=DEFAULT_EPSILON_RANGE[1], gt=0)
    perturb: list[FieldNoise] = Field(default_factory=list)
    budget: BudgetConfig = BudgetConfig()

    @property
    def epsilon_range(self) -> tuple[float, float]:
        """(min, max)."""
        return (self.epsilon_min, self.epsilon_max)


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def validate_config(cfg: Config) -> list[str]:
    """Every problem: an inverted range, epsilon outside it, bounds, non-numeric columns."""
    problems = []
    if cfg.epsilon_min > cfg.epsilon_max:
        problems.append("epsilon_min is greater than epsilon_max")
    numeric = {f.name for schema in SCHEMAS.values() for f in schema if _numeric(f.type)}
    for i, f in enumerate(cfg.perturb):
        if not cfg.epsilon_min <= f.epsilon <= cfg.epsilon_max:
            problems.append(f"perturb[{i}]: epsilon {f.epsilon} outside [{cfg.epsilon_min}, {cfg.epsilon_max}]")
        if not f.lower < f.upper:
            problems.append(f"perturb[{i}]: lower must be below upper")
        if f.column not in numeric:
            problems.append(f"perturb[{i}]: {f.column!r} is not a numeric column of any signal")
    return problems


class Perturb:
    """The processor: per-record Laplace noise on the configured numeric columns."""

    def __init__(self, ctx: ComponentContext, cfg: Config, rng: np.random.Generator | None = None) -> None:
        problems = validate_config(cfg)
        if problems:
            raise ValueError("; ".join(problems))
        self.ctx = ctx
        self.cfg = cfg
        # Seeded from the OS; a fixed seed is only for tests (never from configuration).
        self.rng = rng if rng is not None else np.random.default_rng(secrets.randbits(128))

    def __call__(self, batch: Batch) -> Batch:
        """Noise every configured column present in the batch; nulls stay null."""
        table = batch.table
        for f in self.cfg.perturb:
            if f.column not in table.schema.names or batch.rows == 0:
                continue
            i = table.schema.get_field_index(f.column)
            col = table.column(i).combine_chunks()
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            x = pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.float64)
            noised = np.clip(
                np.clip(x, f.lower, f.upper) + laplace_noise(len(x), f.upper - f.lower, f.epsilon, self.rng),
                f.lower,
                f.upper,
            )
            typ = table.schema.field(i).type
            if pa.types.is_integer(typ):
                noised = np.rint(noised)
            arr = pa.array(noised, type=pa.float64(), mask=~valid).cast(typ, safe=False)
            table = table.set_column(i, table.schema.field(i), arr)
        return batch.replace(table)


def create(ctx: ComponentContext, config: Config) -> Perturb:
    """Build the per-record noise processor."""
    return Perturb(ctx, config)


__all__: Sequence[str] = (
    "BoundsRequiredError",
    "BudgetExhaustedError",
    "BudgetLedger",
    "Config",
    "EpsilonOutOfRangeError",
    "InMemoryLedger",
    "PrivacyError",
    "ReleaseSpec",
    "Statistic",
    "check_epsilon",
    "create",
    "dp_statistic",
    "laplace_noise",
    "release",
)
