"""Sovereignty tiers and fail-closed routing: which rows of a batch each sink may receive.

A row's tier is its ``tier`` column (``local`` > ``sovereign`` > ``public`` in strictness); any
other value is treated as ``local``, the strictest. A sink declares a jurisdiction (a code, see
``sovtel.jurisdictions``) and the tiers it permits, and each tier may live only where the residency
allows (local in the operator's country, sovereign in EU/EEA or a list, public anywhere); a pipeline
carries a set of tiers (all by default). The router splits each batch by tier
and hands a sink only rows of tiers it permits; rows no sink accepts are dropped and counted, never
sent elsewhere. Public rows must not identify anyone (identifier and content columns empty).
Every decision is counted and kept, without identifiers, in a route log (docs/tiers.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter

from sovtel.jurisdictions import JurisdictionError, normalise, within
from sovtel.records import SPAN_CONTENT_COLUMNS, SPAN_SUBJECT_COLUMNS, Batch, Signal

log = logging.getLogger("sovtel.routing")


class Tier(enum.StrEnum):
    """Sovereignty tiers, strictest first."""

    LOCAL = "local"
    SOVEREIGN = "sovereign"
    PUBLIC = "public"


TIERS: tuple[str, ...] = tuple(t.value for t in Tier)
STRICTEST = Tier.LOCAL.value
# Higher is stricter; "at least sovereign" means a strictness of at least 1.
STRICTNESS: Mapping[str, int] = {"public": 0, "sovereign": 1, "local": 2}

# Columns that must be empty for a row to be public: identifiers (linkable to a person or a
# request) and free-text content. Attribute maps are governed by the minimise allow-lists.
IDENTIFYING_COLUMNS: Mapping[Signal, tuple[str, ...]] = {
    Signal.TRACES: (
        "trace_id",
        "span_id",
        "parent_span_id",
        *SPAN_SUBJECT_COLUMNS,
        "key_id",
        *SPAN_CONTENT_COLUMNS,
        "status_message",
    ),
    Signal.LOGS: ("trace_id", "span_id", "tenant_id", "user_id", "key_id", "body"),
    Signal.METRICS: ("tenant_id",),
}


def check_tiers(values: Iterable[str], where: str) -> list[str]:
    """Problems with a list of tier names (unknown names), each prefixed by ``where``."""
    return [f"{where}: unknown tier {v!r} (use {', '.join(TIERS)})" for v in values if v not in TIERS]


def normalise_tiers(table: pa.Table) -> pa.Table:
    """The table with every tier value outside the known tiers replaced by the strictest (``local``)."""
    if "tier" not in table.column_names or table.num_rows == 0:
        return table
    col = table.column("tier")
    known = pc.is_in(col, value_set=pa.array(TIERS))
    if pc.all(known).as_py():
        return table
    fixed = pc.if_else(known, col, pa.scalar(STRICTEST))
    return table.set_column(table.schema.get_field_index("tier"), table.schema.field("tier"), fixed)


def identifiable(signal: Signal, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Boolean per row: True where any identifying column is non-empty (such a row cannot be public)."""
    mask: Any = pa.array([False] * table.num_rows, pa.bool_())
    for name in IDENTIFYING_COLUMNS[signal]:
        if name in table.column_names:
            col = table.column(name)
            mask = pc.or_(mask, pc.fill_null(pc.greater(pc.binary_length(col), 0), False))
    return mask


@dataclass(frozen=True)
class SinkPolicy:
    """What a sink declares: its jurisdiction (a normalised code, or ``unspecified``), the tiers it may
    receive, and whether it is on the node (the embedded store, in the operator's country)."""

    jurisdiction: str = "unspecified"
    tiers: frozenset[str] = frozenset(TIERS)
    on_node: bool = True

    def describe(self) -> str:
        """``jurisdiction 'DE', permits local, sovereign`` for messages."""
        return f"jurisdiction {self.jurisdiction!r}, permits {', '.join(sorted(self.tiers, key=TIERS.index))}"


def sink_policy(config: Any) -> SinkPolicy:
    """The policy an exporter's configuration declares (``jurisdiction``, ``tiers``); all tiers if absent.

    A sink is on the node unless it names a server (``host``, or a ``dsn`` that is not ``chdb:``).
    """
    tiers = getattr(config, "tiers", None)
    jurisdiction = getattr(config, "jurisdiction", None)
    code = str(jurisdiction).strip() if jurisdiction else "unspecified"
    if jurisdiction:
        with contextlib.suppress(JurisdictionError):  # validation reports it; the policy keeps what was written
            code = normalise(code)
    dsn = getattr(config, "dsn", None)
    on_node = getattr(config, "host", None) is None and (dsn is None or str(dsn).startswith("chdb:"))
    return SinkPolicy(
        jurisdiction=code,
        tiers=frozenset(tiers) if tiers is not None else frozenset(TIERS),
        on_node=on_node,
    )


SOVEREIGN_DEFAULT: tuple[str, ...] = ("EU", "EEA")


@dataclass(frozen=True)
class Residency:
    """Where each tier's rows may live: ``local`` in the operator's ``country``, ``sovereign`` within
    ``sovereign`` (codes), ``public`` anywhere. Codes are normalised (``sovtel.jurisdictions``)."""

    country: str | None = None
    sovereign: tuple[str, ...] = SOVEREIGN_DEFAULT

    def allowed(self, tier: str) -> tuple[str, ...] | None:
        """The codes a tier may live within; None means anywhere (or, for local, the unset country)."""
        if tier == Tier.LOCAL.value:
            return (self.country,) if self.country else None
        if tier == Tier.SOVEREIGN.value:
            return self.sovereign
        return None


def residency_problems(exporters: Mapping[str, object], residency: Residency) -> list[tuple[str, str]]:
    """Every sink whose jurisdiction a tier it permits may not live in, as (exporter name, problem).

    Fail closed: a jurisdiction must be a known code; a server sink permitting ``local`` or
    ``sovereign`` must declare one; a sink declaring one and permitting ``local`` needs
    ``service.country`` to be checked against. The node's embedded store without a jurisdiction is
    in the operator's country (checked against ``sovereign`` once ``service.country`` is set).
    """
    problems: list[tuple[str, str]] = []
    for name, config in exporters.items():
        policy = sink_policy(config)
        personal = [t for t in (Tier.LOCAL.value, Tier.SOVEREIGN.value) if t in policy.tiers]
        if policy.jurisdiction == "unspecified":
            if not policy.on_node and personal:
                problems.append((name, (
                    f"a server sink permitting {' and '.join(personal)} must declare its jurisdiction "
                    f"(an ISO 3166-1 alpha-2 country code such as DE, or EU / EEA), so where the rows live "
                    f"can be checked"
                )))
                continue
            if residency.country is None:
                continue
            where = residency.country  # the embedded store is on the node, in the operator's country
            label = f"the store on the node (in {where}, service.country)"
        else:
            try:
                where = normalise(policy.jurisdiction)
            except JurisdictionError as exc:
                problems.append((name, str(exc)))
                continue
            label = f"jurisdiction {where!r}"
        for tier in personal:
            allowed = residency.allowed(tier)
            if allowed is None:  # local without service.country
                problems.append((name, (
                    f"{label} permits tier 'local', which must stay in the operator's country, "
                    f"but service.country is not set (e.g. service.country: DE)"
                )))
            elif not within(where, allowed):
                place = (f"the operator's country ({residency.country}, service.country)" if tier == Tier.LOCAL.value
                         else f"{', '.join(allowed)} (service.sovereign_jurisdictions)")
                problems.append((name, (
                    f"{label} is outside {place}, where tier {tier!r} must stay; "
                    f"remove {tier!r} from this sink's tiers or send {tier!r} rows to a sink there"
                )))
    return problems


class PipelineRoutes(Protocol):
    """What routing needs to know of a configured pipeline: the tiers it carries and its exporters."""

    @property
    def tiers(self) -> Sequence[str] | None: ...

    @property
    def exporters(self) -> Sequence[str]: ...


def route_problems(
    pipelines: Mapping[str, PipelineRoutes],
    exporters: Mapping[str, object],
    where: Callable[[str], str] = lambda pname: f"service.pipelines.{pname}",
) -> list[str]:
    """Every way the configured pipelines could send a tier to a sink that does not permit it, or nowhere.

    ``exporters`` maps an exporter's name to its validated configuration (which declares its policy);
    ``where`` says where a pipeline is written (the loader adds its line).
    The routing table of a pipeline is its carried tiers × its exporters: an exporter receives the
    rows of the carried tiers it permits. So (1) every carried tier needs at least one exporter
    that permits it, and (2) every exporter must permit at least one carried tier.
    """
    problems: list[str] = []
    for pname, pcfg in pipelines.items():
        carried = list(pcfg.tiers) if pcfg.tiers is not None else list(TIERS)
        policies = {ename: sink_policy(exporters[ename]) for ename in pcfg.exporters if ename in exporters}
        if not policies:
            continue
        for tier in carried:
            if tier not in TIERS:
                continue
            if not any(tier in p.tiers for p in policies.values()):
                named = "; ".join(f"exporter {e!r} ({p.describe()})" for e, p in policies.items())
                problems.append(
                    f"{where(pname)}: tier {tier!r} would go to a sink that does not permit it: "
                    f"{named}. Add an exporter that permits {tier!r} or remove {tier!r} from the pipeline's tiers"
                )
        for ename, policy in policies.items():
            if not policy.tiers & set(carried):
                problems.append(
                    f"{where(pname)}: exporter {ename!r} ({policy.describe()}) permits none of the "
                    f"tiers this pipeline carries ({', '.join(carried)}); it must not be routed "
                    f"{' or '.join(repr(t) for t in carried)} data"
                )
    return problems


# Keyed by the registry object itself (weakly): an id() could be reused by a later registry.
_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()


def counter_on(registry: CollectorRegistry, name: str, documentation: str, labels: Iterable[str]) -> Counter:
    """The counter ``name`` of ``registry``, registered on first use (components share one registry)."""
    with _COUNTERS_LOCK:
        by_name = _COUNTERS.setdefault(registry, {})
        counter = by_name.get(name)
        if counter is None:
            counter = Counter(name, documentation, list(labels), registry=registry)
            by_name[name] = counter
        return counter


def route_counter(registry: CollectorRegistry) -> Counter:
    """``sovtel_routed_records_total{pipeline, tier, sink, decision}``."""
    return counter_on(
        registry,
        "sovtel_routed_records",
        "Records the router delivered to a sink or dropped, by tier and decision.",
        ["pipeline", "tier", "sink", "decision"],
    )


class RouteLog:
    """An append-only JSONL audit of routing decisions: one line per minute, pipeline, tier, sink and decision.

    Lines hold counts and times only — never identifiers or content — so the log is not personal
    data and can be kept as long as the audit needs. Written under ``<data_dir>/audit/routes.jsonl``;
    each flush is fsynced. Thread-safe; ``record`` is called on receiver threads.
    """

    def __init__(self, path: Path, flush_interval_s: float = 10.0) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._pending: dict[tuple[str, str, str, str, str, str], int] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, pipeline: str, signal: str, tier: str, sink: str, decision: str, rows: int) -> None:
        """Add ``rows`` to the current minute's count for this decision; flushes now and then."""
        if rows <= 0:
            return
        minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0).isoformat()
        key = (minute, pipeline, signal, tier, sink, decision)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + rows
            due = time.monotonic() - self._last_flush >= self.flush_interval_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Append the pending counts and fsync; idempotent."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
            if not pending:
                return
            lines = [
                json.dumps(
                    {"minute": m, "pipeline": p, "signal": s, "tier": t, "sink": k, "decision": d, "rows": n},
                    separators=(",", ":"),
                )
                for (m, p, s, t, k, d), n in sorted(pending.items())
            ]
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                log.exception("route log %s: cannot append %d line(s)", self.path, len(lines))


@dataclass(frozen=True)
class Route:
    """One sink's share of a batch, with its rows per tier."""

    sink: str
    batch: Batch
    tiers: Mapping[str, int]


@dataclass(frozen=True)
class Routed:
    """The result of routing one batch: each sink's rows, and rows dropped by reason (``reason:tier``)."""

    signal: Signal
    routes: list[Route]
    dropped: dict[str, int]
    rows_in: int


class Router:
    """Splits a pipeline's batches by tier among its sinks; fail closed.

    Precomputes per-sink permitted tiers (sink policy ∩ carried tiers) in ``__init__``; ``route``
    runs on receiver threads with columnar filters only. ``record`` counts a routing once the
    pipeline has queued it, so a refused request is not logged as delivered.
    """

    def __init__(
        self,
        pipeline: str,
        sinks: Mapping[str, SinkPolicy],
        carried: Iterable[str] | None = None,
        counters: Counter | None = None,
        route_log: RouteLog | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.carried = frozenset(carried) if carried is not None else frozenset(TIERS)
        self.sinks = {name: p.tiers & self.carried for name, p in sinks.items()}
        self.counters = counters
        self.route_log = route_log

    def route(self, batch: Batch) -> Routed:
        """Each sink's permitted rows of ``batch`` (tiers normalised), and the rows dropped by reason."""
        table = normalise_tiers(batch.table)
        rows_in = table.num_rows
        if rows_in == 0:
            return Routed(batch.signal, [], {}, 0)
        if "tier" not in table.column_names:
            # Without a tier column nothing proves where rows may go: nothing is delivered.
            return Routed(batch.signal, [], {f"no_tier_column:{STRICTEST}": rows_in}, rows_in)
        tier = table.column("tier")
        counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(tier).to_pylist()}
        dropped: dict[str, int] = {}
        if counts.get(Tier.PUBLIC.value):
            public_bad = pc.and_(pc.equal(tier, pa.scalar(Tier.PUBLIC.value)), identifiable(batch.signal, table))
            bad = int(pc.sum(public_bad).as_py() or 0)
            if bad:
                table = table.filter(pc.invert(public_bad))
                tier = table.column("tier")
                counts[Tier.PUBLIC.value] -= bad
                dropped[f"public_identifiable:{Tier.PUBLIC.value}"] = bad
        for t, n in counts.items():
            if n and t not in self.carried:
                dropped[f"tier_not_carried:{t}"] = n
            elif n and not any(t in permitted for permitted in self.sinks.values()):
                dropped[f"no_permitted_sink:{t}"] = n
        routes: list[Route] = []
        for sink, permitted in self.sinks.items():
            present = {t: counts[t] for t in permitted if counts.get(t)}
            if not present:
                continue
            if sum(present.values()) == table.num_rows:
                part = table
            else:
                part = table.filter(pc.is_in(tier, value_set=pa.array(sorted(present))))
            routes.append(Route(sink, batch.replace(part), present))
        return Routed(batch.signal, routes, dropped, rows_in)

    def record(self, routed: Routed) -> None:
        """Count the routing decisions of a batch that was queued (and log them, without identifiers)."""
        signal = routed.signal.value
        for r in routed.routes:
            for t, n in r.tiers.items():
                self._count(signal, t, r.sink, "delivered", n)
        for reason, n in routed.dropped.items():
            why, _, t = reason.partition(":")
            self._count(signal, t, "-", f"dropped:{why}", n)
        if self.route_log is not None and routed.dropped:
            log.debug("pipeline %s dropped rows by tier: %s", self.pipeline, routed.dropped)

    def _count(self, signal: str, tier: str, sink: str, decision: str, rows: int) -> None:
        if self.counters is not None:
            self.counters.labels(self.pipeline, tier, sink, decision).inc(rows)
        if self.route_log is not None:
            self.route_log.record(self.pipeline, signal, tier, sink, decision, rows)
