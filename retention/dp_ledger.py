"""The differential-privacy budget ledger kept in the store: every charge and refusal of a release, per
tenant and window, in ``{database}.privacy_budget``, and the budget status read back from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from processors.dp import BudgetCap, BudgetConfig, BudgetLedger, BudgetStatus, LedgerEntry
from storage.backend import Store

LEDGER_TABLE = "privacy_budget"


class ClickHouseLedger:
    """Ledger entries in ``{database}.privacy_budget`` (migration 0300), through storage's Store.

    Append-only: a charge is never updated or deleted, so the table is also the audit trail of
    every release and refusal.
    """

    def __init__(self, store: Store, database: str = "sovtel") -> None:
        self.store = store
        self.database = database
        self.table = f"{database}.{LEDGER_TABLE}"

    def append(self, entry: LedgerEntry) -> None:
        """Insert one row."""
        row = pa.table(
            {
                "at": pa.array([entry.at], type=pa.timestamp("ms", tz="UTC")),
                "tenant_id": [entry.tenant_id],
                "window_start": pa.array([entry.window_start], type=pa.timestamp("s", tz="UTC")),
                "window_s": pa.array([entry.window_s], type=pa.uint32()),
                "release": [entry.release],
                "epsilon": pa.array([entry.epsilon], type=pa.float64()),
                "outcome": [entry.outcome],
                "reason": [entry.reason],
                "node": [entry.node],
            }
        )
        self.store.insert_arrow(self.table, row)

    def spent(self, tenant_id: str, window_start: dt.datetime, window_s: int | None = None) -> float:
        """Sum of charged epsilon, read from the store (so it survives restarts).

        With ``window_s``, every charge whose budget window overlaps [window_start, window_start +
        window_s) counts, so charges made under another window length are never forgotten.
        """
        if window_s is None:
            where, params = "window_start = {w:DateTime('UTC')}", {"t": tenant_id, "w": window_start}
        else:
            where = "window_start < {end:DateTime('UTC')} AND addSeconds(window_start, window_s) > {w:DateTime('UTC')}"
            params = {"t": tenant_id, "w": window_start, "end": window_start + dt.timedelta(seconds=window_s)}
        rows = self.store.query_rows(
            f"SELECT sum(epsilon) FROM {self.table} WHERE tenant_id = {{t:String}} AND {where} AND outcome = 'charged'",
            params,
        )
        return float(rows[0][0] or 0.0) if rows else 0.0

    def windows(self, tenant_id: str | None = None) -> list[tuple[str, dt.datetime, float, int, int]]:
        """Aggregated per tenant and window, newest first."""
        where = "WHERE tenant_id = {t:String}" if tenant_id is not None else ""
        rows = self.store.query_rows(
            f"SELECT tenant_id, window_start, sumIf(epsilon, outcome = 'charged'), countIf(outcome = 'charged'), "
            f"countIf(outcome = 'refused') FROM {self.table} {where} "
            "GROUP BY tenant_id, window_start ORDER BY window_start DESC, tenant_id",
            {"t": tenant_id} if tenant_id is not None else None,
        )
        out = []
        for t, w, spent, n, refused in rows:
            ws = w if isinstance(w, dt.datetime) else dt.datetime.fromisoformat(str(w))
            out.append(
                (str(t), ws.replace(tzinfo=dt.UTC) if ws.tzinfo is None else ws, float(spent), int(n), int(refused))
            )
        return out


def ledger_for(store: Store, cfg: BudgetConfig, node: str = "") -> BudgetLedger:
    """A budget ledger on a store per a budget config."""
    return BudgetLedger(ClickHouseLedger(store, cfg.database), cfg.per_window, cfg.window_s, node)


@dataclass(frozen=True)
class BudgetReport:
    """The budget status per tenant and window, the default cap it is measured against (each row carries
    its tenant's cap), and the ledger table."""

    table: str
    budget: float
    window_s: int
    rows: list[BudgetStatus]

    def as_json(self) -> list[dict[str, Any]]:
        """One object per tenant and window."""
        return [
            {"tenant_id": r.tenant_id, "window_start": r.window_start.isoformat(), "spent": r.spent,
             "remaining": r.remaining, "budget": r.budget, "releases": r.releases, "refusals": r.refusals}
            for r in self.rows
        ]  # fmt: skip


def budget_status(store: Store, database: str, budget_per_window: float, window_s: int,
                  tenant_id: str | None = None, caps: Callable[[str], BudgetCap] | None = None) -> BudgetReport:
    """Spent and remaining budget per tenant and window (one tenant's when ``tenant_id`` is given), against
    each tenant's cap from ``caps`` (the budget policy), else ``budget_per_window`` per ``window_s``."""
    ledger = BudgetLedger(ClickHouseLedger(store, database), budget_per_window, window_s, caps=caps)
    return BudgetReport(f"{database}.{LEDGER_TABLE}", ledger.budget, ledger.window_s, ledger.status(tenant_id))
