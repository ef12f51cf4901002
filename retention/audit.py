"""Audit checks over the stores: ledger integrity, collector gaps, PII leaks, retention compliance, model
documentation, k-anonymity and access audit; each run is itself recorded in the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from retention.aiact import AiActStore
from retention.checkpoints import canonical_json
from retention.config import AuditConfig
from retention.enforce import table_status
from retention.erasure import Tier
from retention.guard import PiiGuard
from retention.ledger import Ledger, LedgerEntry, access_ids, format_timestamp, verify_ledger
from retention.policies import RetentionPolicies
from retention.tables import TableInfo, discover, quote_identifier
from storage.backend import Store, StoreError

Status = Literal["pass", "fail", "error", "skipped"]

# A usage aggregate ages by its day, which precedes its ledger entry by up to the personal window.
_AGGREGATE_SLACK = dt.timedelta(days=100)


@dataclass
class CheckResult:
    """One check's outcome: status, a one-line summary, the number of findings and the evidence."""

    name: str
    title: str
    status: Status
    summary: str
    findings: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass
class AuditContext:
    """What the checks read: the tiers, the AI-Act store and ledger, policies and thresholds."""

    tiers: Sequence[Tier]
    aiact_store: Store
    aiact_database: str
    ledger: Ledger
    policies: RetentionPolicies
    config: AuditConfig
    guard: PiiGuard
    checkpoint_dir: Path | None = None
    public_key: Ed25519PublicKey | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def lookback_s(self) -> int:
        """The data window in seconds."""
        return int(self.config.lookback_hours * 3600)

    def tier_tables(self) -> list[tuple[Tier, TableInfo]]:
        """Every MergeTree table of every tier."""
        return [(tier, info) for tier in self.tiers for info in discover(tier.store, tier.database)]

    def aiact(self) -> AiActStore:
        """The AI-Act store (reads only here)."""
        return AiActStore(self.aiact_store, self.aiact_database, self.ledger, self.guard)


Check = Callable[[AuditContext], CheckResult]


def _status(findings: int) -> Status:
    return "fail" if findings else "pass"


def check_ledger(ctx: AuditContext) -> CheckResult:
    """The hash chain verifies against the checkpoints, and every AI-Act record row matches its ledger digest."""
    v = verify_ledger(ctx.ledger, ctx.checkpoint_dir, ctx.public_key)
    integrity = ctx.aiact().check_integrity(
        ctx.entries, ctx.now - dt.timedelta(days=365.25 * ctx.policies.aiact.years) + _AGGREGATE_SLACK)
    findings = len(v.problems) + sum(integrity.unrecorded.values()) + sum(integrity.vanished.values())
    kinds: dict[str, int] = {}
    for p in v.problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    summary = (f"{v.entries} entries, head seq {v.head_seq}, {v.checkpoints} checkpoint(s) checked"
               if not findings else f"{len(v.problems)} chain problem(s), "
               f"{sum(integrity.unrecorded.values())} unrecorded and {sum(integrity.vanished.values())} vanished "
               "AI-Act row(s)")
    return CheckResult("ledger_integrity", "Ledger integrity", _status(findings), summary, findings, {
        "entries": v.entries, "first_seq": v.first_seq, "head_seq": v.head_seq, "head_hash": v.head_hash,
        "checkpoints_verified": v.checkpoints, "problems_by_kind": kinds,
        "problems": [p.message for p in v.problems[:50]], "notes": v.notes,
        "aiact_rows": integrity.rows, "aiact_rows_unrecorded": integrity.unrecorded,
        "aiact_rows_vanished": integrity.vanished,
    })


def check_collector_gaps(ctx: AuditContext) -> CheckResult:
    """Every collector's heartbeats (pipeline_health rows per node) come without a gap above the threshold."""
    gap = int(ctx.config.heartbeat_gap_s)
    nodes: dict[str, dict[str, Any]] = {}
    findings = 0
    tiers_without = []
    for tier in ctx.tiers:
        table = f"{quote_identifier(tier.database)}.pipeline_health"
        rows = tier.store.query_rows(
            "SELECT node, length(ts), ts[1], ts[-1], arrayMax(arrayPushFront(arrayDifference(ts), 0)), "
            "arrayCount(x -> x > {gap:UInt32}, arrayDifference(ts)), toUnixTimestamp(now()) - ts[-1] "
            "FROM (SELECT node, arraySort(groupUniqArray(toUnixTimestamp(timestamp))) AS ts "
            f"FROM {table} WHERE timestamp >= now() - INTERVAL {ctx.lookback_s} SECOND GROUP BY node) ORDER BY node",
            {"gap": gap},
        ) if _has_table(tier.store, tier.database, "pipeline_health") else []
        if not rows:
            tiers_without.append(tier.database)
        for node, beats, first, last, max_gap, gaps, silent_s in rows:
            silent = int(silent_s) > gap
            n = int(gaps) + (1 if silent else 0)
            findings += n
            nodes[f"{tier.database}/{node}"] = {"heartbeats": int(beats), "first": _iso(first), "last": _iso(last),
                                                "max_gap_s": int(max_gap), "gaps": int(gaps),
                                                "silent_now": silent, "silent_for_s": int(silent_s)}
    findings += len(tiers_without)
    if tiers_without:
        summary = (f"no heartbeats in {', '.join(tiers_without)} over the last {ctx.config.lookback_hours:g} h: "
                   "continuity of logging cannot be shown")
    else:
        summary = f"{len(nodes)} collector(s); {findings} gap(s) longer than {gap} s"
    return CheckResult("collector_gaps", "Temporal gaps per collector", _status(findings), summary, findings,
                       {"threshold_s": gap, "lookback_hours": ctx.config.lookback_hours, "collectors": nodes,
                        "tiers_without_heartbeats": tiers_without})


def _iso(value: Any) -> str:
    if isinstance(value, int):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return format_timestamp(value) if isinstance(value, dt.datetime) else str(value)


def _has_table(store: Store, database: str, table: str) -> bool:
    rows = store.query_rows("SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                            {"db": database, "t": table})
    return bool(rows and rows[0][0])


def _text_columns(info: TableInfo) -> list[str]:
    out = []
    for name, ctype in info.columns.items():
        inner = ctype.replace("LowCardinality(", "").replace("Nullable(", "")
        if inner.startswith("String") or inner.startswith("Array(String") or (
                ctype.startswith("Map(") and ctype.endswith(", String)")):
            out.append(name)
    return out


def _sample(store: Store, info: TableInfo, columns: list[str], n: int, lookback_s: int) -> list[dict[str, Any]]:
    select = ", ".join(quote_identifier(c) for c in columns)
    where = f"WHERE {info.time_expr} >= now() - INTERVAL {lookback_s} SECOND" if info.time_expr else ""
    table: pa.Table = store.query_arrow(f"SELECT {select} FROM {info.qualified} {where} ORDER BY rand() LIMIT {int(n)}")
    return list(table.to_pylist())


def check_pii_leaks(ctx: AuditContext) -> CheckResult:
    """A sample of every personal and AI-Act table holds no unmasked personal data (field and entity counted)."""
    targets: list[tuple[Store, TableInfo]] = [
        (tier.store, info) for tier, info in ctx.tier_tables()
        if ctx.policies.stream_of(info, ctx.aiact_database) == "personal"
    ]
    targets.extend((ctx.aiact_store, info) for info in discover(ctx.aiact_store, ctx.aiact_database))
    found: dict[str, dict[str, dict[str, int]]] = {}
    sampled: dict[str, int] = {}
    findings = 0
    for store, info in targets:
        columns = _text_columns(info)
        if not columns:
            continue
        rows = _sample(store, info, columns, ctx.config.pii_sample_rows, ctx.lookback_s if info.database !=
                       ctx.aiact_database else int(ctx.policies.aiact.years * 366 * 86400))
        sampled[info.label] = len(rows)
        hits = ctx.guard.scan_rows(rows)
        rows_with_hits = {i for i, _ in hits}
        findings += len(rows_with_hits)
        for _, hit in hits:
            column = hit.field.split(".", 1)[0].split("[", 1)[0]
            per_entity = found.setdefault(info.label, {}).setdefault(column, {})
            for entity in hit.entities:
                per_entity[entity] = per_entity.get(entity, 0) + 1
    summary = (f"{sum(sampled.values())} rows sampled from {len(sampled)} table(s); "
               + (f"{findings} row(s) hold unmasked personal data" if findings else "no personal data found"))
    return CheckResult("pii_leaks", "PII leak scan (sampled)", _status(findings), summary, findings,
                       {"sampled_rows": sampled, "detections": found,
                        "sample_rows_per_table": ctx.config.pii_sample_rows})


def check_retention(ctx: AuditContext) -> CheckResult:
    """No row of any table is older than its retention policy (plus the configured grace)."""
    tables = [(tier.store, info) for tier, info in ctx.tier_tables()]
    tables.extend((ctx.aiact_store, info) for info in discover(ctx.aiact_store, ctx.aiact_database))
    statuses = []
    for store, info in tables:
        stream = ctx.policies.stream_of(info, ctx.aiact_database)
        statuses.append(table_status(store, info, stream, ctx.policies.interval(stream),
                                     grace_hours=ctx.config.retention_grace_hours, now=ctx.now))
    overdue = [s for s in statuses if s.status == "overdue"]
    findings = sum(s.expired_rows for s in overdue)
    mismatched = [f"{s.database}.{s.table}" for s in statuses if not s.ttl_matches]
    summary = (f"{len(statuses)} table(s) within policy" if not overdue
               else f"{findings} row(s) in {len(overdue)} table(s) older than their policy")
    if mismatched:
        summary += f"; TTL differs from policy on {len(mismatched)} table(s)"
    return CheckResult("retention", "Retention compliance", _status(findings), summary, findings, {
        "grace_hours": ctx.config.retention_grace_hours,
        "tables": {f"{s.database}.{s.table}": {"stream": s.stream, "policy": s.policy, "ttl": s.ttl,
                                               "oldest": s.oldest, "oldest_age_days": s.oldest_age_days,
                                               "rows": s.rows, "overdue_rows": s.expired_rows, "status": s.status}
                   for s in statuses},
        "ttl_differs": mismatched,
    })


_DOC_FIELDS = ("training_data", "hyperparameters", "deployment_config", "documentation_hash")


def check_model_docs(ctx: AuditContext) -> CheckResult:
    """Every model seen in spans has a model_versions entry, and its latest entry documents every field."""
    seen: dict[str, int] = {}
    for tier in ctx.tiers:
        if not _has_table(tier.store, tier.database, "spans"):
            continue
        for model, n in tier.store.query_rows(
            "SELECT if(response_model = '', request_model, response_model) AS m, count() FROM "
            f"{quote_identifier(tier.database)}.spans WHERE timestamp >= now() - INTERVAL {ctx.lookback_s} SECOND "
            "AND (operation != '' OR input_tokens > 0 OR output_tokens > 0) AND m != '' GROUP BY m"
        ):
            seen[str(model)] = seen.get(str(model), 0) + int(n)
    latest = {
        str(m): dict(zip(_DOC_FIELDS, rest, strict=True))
        for m, *rest in ctx.aiact_store.query_rows(
            "SELECT model, argMax(training_data, timestamp), argMax(hyperparameters, timestamp), "
            "argMax(deployment_config, timestamp), argMax(documentation_hash, timestamp) "
            f"FROM {quote_identifier(ctx.aiact_database)}.model_versions GROUP BY model"
        )
    }
    undocumented = sorted(m for m in seen if m not in latest)
    incomplete = {
        m: [f for f in _DOC_FIELDS if str(latest[m][f]).strip() in ("", "{}", "[]")]
        for m in sorted(seen) if m in latest
    }
    incomplete = {m: fields for m, fields in incomplete.items() if fields}
    findings = len(undocumented) + len(incomplete)
    summary = (f"all {len(seen)} model(s) seen in spans are documented" if not findings
               else f"{len(undocumented)} undocumented and {len(incomplete)} incompletely documented model(s)")
    return CheckResult("model_documentation", "Model documentation completeness", _status(findings), summary,
                       findings, {"models_seen": seen, "undocumented": undocumented, "incomplete": incomplete,
                                  "registered": sorted(latest)})


def check_k_anonymity(ctx: AuditContext) -> CheckResult:
    """Every configured quasi-identifier combination occurs at least k times in the lookback window."""
    sets: list[dict[str, Any]] = []
    findings = 0
    for qi in ctx.config.quasi_identifiers:
        for tier in ctx.tiers:
            info = next((t for t in discover(tier.store, tier.database) if t.name == qi.table), None)
            entry: dict[str, Any] = {"table": f"{tier.database}.{qi.table}", "columns": list(qi.columns), "k": qi.k}
            if info is None:
                entry["error"] = "table not found"
                findings += 1
                sets.append(entry)
                continue
            missing = [c for c in qi.columns if c not in info.columns]
            if missing:
                entry["error"] = f"unknown column(s): {', '.join(missing)}"
                findings += 1
                sets.append(entry)
                continue
            cols = ", ".join(quote_identifier(c) for c in qi.columns)
            where = f"WHERE {info.time_expr} >= now() - INTERVAL {ctx.lookback_s} SECOND" if info.time_expr else ""
            groups, small, small_rows, smallest = tier.store.query_rows(
                f"SELECT count(), countIf(c < {int(qi.k)}), sumIf(c, c < {int(qi.k)}), min(c) FROM "
                f"(SELECT count() AS c FROM {info.qualified} {where} GROUP BY {cols})"
            )[0]
            entry.update(groups=int(groups), groups_below_k=int(small), rows_in_small_groups=int(small_rows),
                         smallest_group=int(smallest) if groups else None)
            findings += int(small)
            sets.append(entry)
    summary = (f"{len(sets)} quasi-identifier set(s) are {min((s['k'] for s in sets), default=0)}-anonymous"
               if not findings else f"{findings} combination(s) occur fewer than k times")
    return CheckResult("k_anonymity", "k-anonymity of quasi-identifiers", _status(findings), summary, findings,
                       {"sets": sets})


def check_access(ctx: AuditContext) -> CheckResult:
    """Every audit read and every tagged query the server logged has its access entry in the ledger."""
    access: dict[str, LedgerEntry] = {}
    for e in ctx.entries:
        if e.action == "access":
            access_id = str(e.data.get("access_id", ""))
            if access_id:
                access[access_id] = e
    runs_unrecorded = [
        e.seq for e in ctx.entries
        if e.action == "audit.run" and str(e.data.get("run_id", "")) not in access
    ]
    evidence: dict[str, Any] = {"access_entries": len(access), "audit_runs_without_access_entry": runs_unrecorded}
    unmatched: list[str] = []
    stores = {id(t.store): t.store for t in ctx.tiers}
    stores[id(ctx.aiact_store)] = ctx.aiact_store
    logged = 0
    available = False
    for store in stores.values():
        try:
            rows = store.query_rows(
                "SELECT query FROM system.query_log WHERE type = 'QueryFinish' "
                f"AND event_time >= now() - INTERVAL {ctx.lookback_s} SECOND AND query LIKE '%sovtel-access:%' "
                "AND query NOT LIKE '%system.query_log%'"
            )
        except StoreError:
            continue
        available = True
        for (text,) in rows:
            for access_id in access_ids(str(text)):
                logged += 1
                if access_id not in access:
                    unmatched.append(access_id)
    evidence.update(query_log="available" if available else "unavailable", tagged_queries_logged=logged,
                    tagged_queries_without_entry=unmatched)
    findings = len(runs_unrecorded) + len(unmatched)
    summary = (f"{len(access)} access entries; " + (
        f"{logged} logged query(ies) cross-checked" if available
        else "server query log unavailable (embedded store): reads are recorded by sovtel itself only"))
    if findings:
        summary = f"{findings} read(s) without an access entry in the ledger"
    return CheckResult("access_audit", "Access audit", _status(findings), summary, findings, evidence)


CHECKS: tuple[tuple[str, Check], ...] = (
    ("ledger_integrity", check_ledger),
    ("collector_gaps", check_collector_gaps),
    ("pii_leaks", check_pii_leaks),
    ("retention", check_retention),
    ("model_documentation", check_model_docs),
    ("k_anonymity", check_k_anonymity),
    ("access_audit", check_access),
)
TITLES = {
    "ledger_integrity": "Ledger integrity",
    "collector_gaps": "Temporal gaps per collector",
    "pii_leaks": "PII leak scan (sampled)",
    "retention": "Retention compliance",
    "model_documentation": "Model documentation completeness",
    "k_anonymity": "k-anonymity of quasi-identifiers",
    "access_audit": "Access audit",
}


@dataclass
class AuditRun:
    """One audit run: its id, times, each check's result, and where it sits in the ledger."""

    run_id: str
    started: str
    finished: str = ""
    results: list[CheckResult] = field(default_factory=list)
    access_seq: int | None = None
    ledger_seq: int | None = None
    ledger_head_hash: str | None = None
    targets: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every check passed (or was skipped)."""
        return all(r.status in ("pass", "skipped") for r in self.results)

    def as_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the report."""
        return {
            "run_id": self.run_id, "started": self.started, "finished": self.finished, "ok": self.ok,
            "access_seq": self.access_seq, "ledger_seq": self.ledger_seq, "ledger_head_hash": self.ledger_head_hash,
            "targets": self.targets, "checks": [r.as_json() for r in self.results],
        }


def run_audit(ctx: AuditContext, checks: Sequence[tuple[str, Check]] = CHECKS) -> AuditRun:
    """Record the read, run every check (one failing to run is an ``error``, not a crash), record the result.

    The result goes to the ledger (``audit.run``, with the access entry's seq) and, when the table
    exists, one row per check to ``audit_results``.
    """
    run = AuditRun(run_id=secrets.token_hex(8), started=format_timestamp(ctx.now))
    run.targets = {"tiers": [t.database for t in ctx.tiers], "aiact": ctx.aiact_database}
    access = ctx.ledger.append("access", {"source": "sovtel audit run", "access_id": run.run_id,
                                          "reads": run.targets, "checks": [name for name, _ in checks]})
    run.access_seq = access.seq
    ctx.entries = list(ctx.ledger.entries())
    for name, check in checks:
        try:
            result = check(ctx)
        except Exception as exc:  # one broken check must not hide the others' results
            result = CheckResult(name, TITLES.get(name, name), "error", f"{type(exc).__name__}: {exc}"[:500], 1)
        run.results.append(result)
    run.finished = format_timestamp(dt.datetime.now(dt.UTC))
    entry = ctx.ledger.append("audit.run", {
        "run_id": run.run_id, "access_seq": run.access_seq, "ok": run.ok,
        "results": [{"check": r.name, "status": r.status, "findings": r.findings, "summary": r.summary}
                    for r in run.results],
    })
    run.ledger_seq, run.ledger_head_hash = entry.seq, entry.hash
    if _has_table(ctx.aiact_store, ctx.aiact_database, "audit_results"):
        rows = [{"timestamp": entry.timestamp, "run_id": run.run_id, "check_name": r.name, "status": r.status,
                 "findings": r.findings, "summary": r.summary, "evidence": canonical_json(_jsonable(r.evidence)),
                 "ledger_seq": entry.seq} for r in run.results]
        for index, hit in ctx.guard.scan_rows(rows):
            # Evidence names nodes, models and tables; one that looks personal is withheld, not stored.
            rows[index][hit.field.split(".", 1)[0]] = canonical_json(
                {"withheld": f"{hit.field} looked like personal data ({', '.join(hit.entities)})"})
        ctx.guard.check(f"{ctx.aiact_database}.audit_results", rows)
        ctx.aiact_store.insert_arrow(f"{ctx.aiact_database}.audit_results", pa.Table.from_pylist(rows, schema=_RESULTS))
    return run


_RESULTS = pa.schema([
    pa.field("timestamp", pa.timestamp("ms", tz="UTC")), pa.field("run_id", pa.string()),
    pa.field("check_name", pa.string()), pa.field("status", pa.string()), pa.field("findings", pa.uint64()),
    pa.field("summary", pa.string()), pa.field("evidence", pa.string()), pa.field("ledger_seq", pa.uint64()),
])


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
