"""Retention enforcement: table TTLs brought to the policy, expired rows removed now (whole partitions
dropped, partial ones lightweight-deleted), and the status of every table against its policy.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from retention.aiact import AggregateReport, AiActStore
from retention.ledger import LEDGER_TABLE, Ledger, LedgerEntry
from retention.policies import RetentionPolicies, Stream
from retention.tables import Interval, TableInfo, discover
from storage.backend import Store, StoreError

log = logging.getLogger("sovtel.retention.enforce")

_PARTITION_ID = re.compile(r"^[A-Za-z0-9_\-]+$")

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


@dataclass
class TableStatus:
    """One table against its policy: oldest row, rows past the policy, whether its TTL matches."""

    database: str
    table: str
    stream: Stream
    policy: str
    policy_days: float
    ttl: str | None
    ttl_matches: bool
    rows: int
    oldest: str | None
    oldest_age_days: float | None
    expired_rows: int
    status: str

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def _grace_sql(grace_hours: float) -> str:
    return f" + INTERVAL {int(grace_hours * 3600)} SECOND" if grace_hours else ""


def table_status(store: Store, info: TableInfo, stream: Stream, interval: Interval, *, grace_hours: float = 0.0,
                 now: dt.datetime | None = None) -> TableStatus:
    """The status of one table: ``ok``, ``overdue`` (rows older than the policy), ``ttl-differs``
    (the TTL is not the policy yet; ``retention apply`` sets it), ``no-ttl`` or ``no-time-column``."""
    ttl_matches = info.ttl == interval
    base = TableStatus(info.database, info.name, stream, str(interval), interval.approx_days,
                       str(info.ttl) if info.ttl else None, ttl_matches, 0, None, None, 0, "ok")
    if info.time_expr is None:
        base.rows = int(store.query_rows(f"SELECT count() FROM {info.qualified}")[0][0])
        base.status = "no-time-column"
        return base
    expired = f"({info.time_expr} + {interval.sql()}{_grace_sql(grace_hours)} <= now())"
    rows, oldest, n_expired = store.query_rows(
        f"SELECT count(), min({info.time_expr}), countIf({expired}) FROM {info.qualified}"
    )[0]
    base.rows = int(rows)
    base.expired_rows = int(n_expired)
    if base.rows:
        oldest_utc = oldest.replace(tzinfo=dt.UTC) if oldest.tzinfo is None else oldest
        base.oldest = oldest_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        base.oldest_age_days = round(((now or dt.datetime.now(dt.UTC)) - oldest_utc).total_seconds() / 86400, 2)
    if base.expired_rows:
        base.status = "overdue"
    elif info.ttl is None:
        base.status = "no-ttl"
    elif not ttl_matches:
        base.status = "ttl-differs"
    return base


def _tables(store: Store, databases: Sequence[str], aiact_database: str | None) -> list[TableInfo]:
    found: list[TableInfo] = []
    for db in databases:
        found.extend(discover(store, db))
    if aiact_database is not None:
        found.extend(discover(store, aiact_database))
    return found


def status(store: Store, databases: Sequence[str], aiact_database: str | None, policies: RetentionPolicies,
           grace_hours: float = 0.0) -> list[TableStatus]:
    """The status of every MergeTree table of the tier databases and the AI-Act database."""
    out: list[TableStatus] = []
    for info in _tables(store, databases, aiact_database):
        stream = policies.stream_of(info, aiact_database or "")
        out.append(table_status(store, info, stream, policies.interval(stream), grace_hours=grace_hours))
    return out


@dataclass
class TableResult:
    """What apply did to one table."""

    table: str
    stream: Stream
    policy: str
    ttl_before: str | None
    ttl_changed: bool = False
    expired_rows: int = 0
    partitions_dropped: int = 0
    rows_in_dropped_partitions: int = 0
    rows_deleted: int = 0
    rows_remaining_expired: int = 0
    note: str = ""
    error: str | None = None

    @property
    def rows_removed(self) -> int:
        """Rows past the policy that are gone now."""
        return max(0, self.expired_rows - self.rows_remaining_expired)

    def as_json(self) -> dict[str, Any]:
        """Plain data (with ``rows_removed``)."""
        return {**asdict(self), "rows_removed": self.rows_removed}


@dataclass
class ApplyReport:
    """One ``retention apply`` run."""

    started: str
    finished: str = ""
    policies: dict[str, object] = field(default_factory=dict)
    tables: list[TableResult] = field(default_factory=list)
    aggregates: AggregateReport | None = None
    ledger_seq: int | None = None

    @property
    def ok(self) -> bool:
        """Whether every table is within its policy now."""
        return all(t.error is None and t.rows_remaining_expired == 0 for t in self.tables)

    @property
    def rows_removed(self) -> int:
        """Rows removed over all tables."""
        return sum(t.rows_removed for t in self.tables)

    def as_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the ledger."""
        return {
            "started": self.started,
            "finished": self.finished,
            "policies": self.policies,
            "ok": self.ok,
            "rows_removed": self.rows_removed,
            "tables": [t.as_json() for t in self.tables],
            "aggregated_days": self.aggregates.days if self.aggregates else {},
            "ledger_seq": self.ledger_seq,
        }


def _count_expired(store: Store, info: TableInfo, interval: Interval) -> int:
    return int(store.query_rows(f"SELECT countIf({info.expired_sql(interval)}) FROM {info.qualified}")[0][0])


def enforce_table(store: Store, info: TableInfo, stream: Stream, interval: Interval, *,
                  anchor: Callable[[LedgerEntry], bool] | None = None, ledger: Ledger | None = None) -> TableResult:
    """Set the table's TTL to the policy if it differs, then remove every row past the policy now.

    Whole expired partitions are dropped; rows in partly expired partitions are removed with a
    lightweight DELETE. (MATERIALIZE TTL alone would not do: with ``ttl_only_drop_parts`` it only
    drops parts whose every row expired.) Expired ledger entries are removed only after ``anchor``
    has written a signed checkpoint of the newest of them, so the chain still verifies.
    """
    result = TableResult(info.label, stream, str(interval), str(info.ttl) if info.ttl else None)
    if info.time_expr is None:
        result.error = "no time column to apply the policy to"
        return result
    expired = info.expired_sql(interval)
    result.expired_rows = _count_expired(store, info, interval)
    if info.name == LEDGER_TABLE and stream == "aiact" and result.expired_rows and ledger is not None:
        newest = store.query_rows(f"SELECT max(seq) FROM {info.qualified} WHERE {expired}")[0][0]
        entries = ledger.at(int(newest))
        if anchor is None or not entries or not anchor(entries[0]):
            result.note = "expired ledger entries kept: no signing key to anchor the chain with a checkpoint"
            result.rows_remaining_expired = result.expired_rows
            return result
    if info.ttl != interval:
        store.command(f"ALTER TABLE {info.qualified} MODIFY TTL {info.time_expr} + {interval.sql()} DELETE "
                      "SETTINGS mutations_sync = 2")
        result.ttl_changed = True
    if _count_expired(store, info, interval):
        partitions = store.query_rows(
            f"SELECT _partition_id, count(), countIf({expired}) FROM {info.qualified} "
            f"GROUP BY _partition_id HAVING countIf({expired}) > 0 ORDER BY _partition_id"
        )
        partial = False
        for pid, rows, n_expired in partitions:
            if int(rows) == int(n_expired) and _PARTITION_ID.match(str(pid)):
                store.command(f"ALTER TABLE {info.qualified} DROP PARTITION ID '{pid}'")
                result.partitions_dropped += 1
                result.rows_in_dropped_partitions += int(rows)
            else:
                partial = True
        if partial:
            before = _count_expired(store, info, interval)
            store.command(f"DELETE FROM {info.qualified} WHERE {expired} SETTINGS lightweight_deletes_sync = 2")
            result.rows_deleted = before - _count_expired(store, info, interval)
    result.rows_remaining_expired = _count_expired(store, info, interval)
    return result


def apply(
    store: Store,
    databases: Sequence[str],
    aiact_database: str | None,
    policies: RetentionPolicies,
    *,
    ledger: Ledger | None = None,
    aiact: AiActStore | None = None,
    aggregate: bool = True,
    anchor: Callable[[LedgerEntry], bool] | None = None,
    progress: Progress = _no_progress,
) -> ApplyReport:
    """Enforce the policies on every table of the tier databases and the AI-Act database, now.

    With ``aiact`` and ``aggregate``, every complete day of the tiers' spans is first aggregated
    into ``usage_daily`` (the personal rows are about to go). A failure on one table is reported
    and the others still run. The run is recorded in ``ledger`` (rows removed per table).
    """
    report = ApplyReport(started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         policies=policies.describe())
    if aiact is not None and aggregate:
        report.aggregates = AggregateReport()
        for db in databases:
            progress(f"aggregating {db}.spans into {aiact.database}.usage_daily")
            aiact.aggregate_usage(store, db, report=report.aggregates)
    for info in _tables(store, databases, aiact_database):
        stream = policies.stream_of(info, aiact_database or "")
        progress(f"{info.label} ({stream}, {policies.interval(stream)})")
        try:
            result = enforce_table(store, info, stream, policies.interval(stream), anchor=anchor, ledger=ledger)
        except StoreError as exc:
            log.error("retention apply: %s failed: %s", info.label, exc)
            result = TableResult(info.label, stream, str(policies.interval(stream)),
                                 str(info.ttl) if info.ttl else None, error=str(exc))
        report.tables.append(result)
    report.finished = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if ledger is not None:
        entry = ledger.append("retention.apply", {
            "policies": report.policies,
            "ok": report.ok,
            "rows_removed": report.rows_removed,
            "tables_checked": len(report.tables),
            # Only tables where something happened or is wrong; the rest were within policy.
            "tables": [
                {"table": t.table, "stream": t.stream, "policy": t.policy, "ttl_changed": t.ttl_changed,
                 "rows_removed": t.rows_removed, "partitions_dropped": t.partitions_dropped,
                 "rows_remaining_expired": t.rows_remaining_expired, **({"error": t.error} if t.error else {})}
                for t in report.tables
                if t.rows_removed or t.ttl_changed or t.rows_remaining_expired or t.error
            ],
        })
        report.ledger_seq = entry.seq
    return report
