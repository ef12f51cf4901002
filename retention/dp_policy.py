"""The differential-privacy budget policy kept in the store: the epsilon cap per tenant and budget window
that every release reads (``{database}.privacy_budget_policy``, migration 0900), and the administrative
act that changes it. Lowering a cap is always allowed; raising one (more epsilon, or a shorter window) is
recorded first in the AI-Act ledger with who and why, and is refused when it cannot be recorded. A flag
or a configuration value can only lower the cap for one run: nothing but this act raises it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from processors.dp import BudgetCap, BudgetConfig
from retention.ledger import Ledger, LedgerError
from storage.backend import Store

POLICY_TABLE = "privacy_budget_policy"
ALL_TENANTS = ""
# The cap of a store whose policy was never set: the product's default budget.
DEFAULT_CAP = BudgetCap(BudgetConfig().per_window, BudgetConfig().window_s)

_SCHEMA = pa.schema([
    pa.field("at", pa.timestamp("ms", tz="UTC")), pa.field("tenant_id", pa.string()),
    pa.field("per_window", pa.float64()), pa.field("window_s", pa.uint32()),
    pa.field("previous_per_window", pa.float64()), pa.field("previous_window_s", pa.uint32()),
    pa.field("change", pa.string()), pa.field("actor", pa.string()), pa.field("reason", pa.string()),
    pa.field("ledger_seq", pa.uint64()),
])


class BudgetPolicyError(Exception):
    """A change of the budget policy was refused (a raise without actor, reason or ledger; no policy table)."""


@dataclass(frozen=True)
class PolicyEntry:
    """The cap in force for one tenant ('' = every tenant without its own), and who set it when."""

    tenant_id: str
    cap: BudgetCap
    at: dt.datetime | None = None
    actor: str = ""
    reason: str = ""
    ledger_seq: int = 0


@dataclass(frozen=True)
class PolicyChange:
    """One change of the policy: the cap before and after, whether it raised, and its ledger entry."""

    tenant_id: str
    previous: BudgetCap
    cap: BudgetCap
    change: str
    ledger_seq: int | None

    def describe(self) -> str:
        """One line for a person."""
        who = "every tenant" if self.tenant_id == ALL_TENANTS else f"tenant {self.tenant_id}"
        where = f"; ledger entry {self.ledger_seq}" if self.ledger_seq else ""
        return (f"budget of {who}: {self.previous.per_window:g} per {self.previous.window_s} s -> "
                f"{self.cap.per_window:g} per {self.cap.window_s} s ({self.change}){where}")


def is_raise(previous: BudgetCap, cap: BudgetCap) -> bool:
    """Whether ``cap`` allows more than ``previous``: more epsilon per window, or a shorter window."""
    return cap.per_window > previous.per_window + 1e-12 or cap.window_s < previous.window_s


class BudgetPolicy:
    """The budget policy of one tier database: read the caps in force, change them as an audited act."""

    def __init__(self, store: Store, database: str = "sovtel") -> None:
        if not database.isidentifier():
            raise ValueError(f"database {database!r} must be a plain identifier")
        self.store = store
        self.database = database
        self.table = f"{database}.{POLICY_TABLE}"

    def exists(self) -> bool:
        """Whether the policy table exists (migration 0900 ran)."""
        rows = self.store.query_rows(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": POLICY_TABLE},
        )
        return bool(rows and rows[0][0])

    def entries(self) -> dict[str, PolicyEntry]:
        """The newest policy row per tenant ('' included when set); empty without a table or rows."""
        if not self.exists():
            return {}
        rows = self.store.query_rows(
            f"SELECT tenant_id, argMax(tuple(per_window, window_s, at, actor, reason, ledger_seq), (at, ledger_seq)) "
            f"FROM {self.table} GROUP BY tenant_id"
        )
        out: dict[str, PolicyEntry] = {}
        for tenant, (per_window, window_s, at, actor, reason, seq) in rows:
            out[str(tenant)] = PolicyEntry(str(tenant), BudgetCap(float(per_window), int(window_s)), at, str(actor),
                                           str(reason), int(seq))
        return out

    def in_force(self, tenant_id: str = ALL_TENANTS) -> PolicyEntry:
        """The cap in force for ``tenant_id``: its own row, else every tenant's, else the default."""
        entries = self.entries()
        return entries.get(tenant_id) or entries.get(ALL_TENANTS) or PolicyEntry(ALL_TENANTS, DEFAULT_CAP)

    def caps(self, lower_to: float | None = None) -> Callable[[str], BudgetCap]:
        """The cap per tenant as read now, optionally lowered to ``lower_to`` epsilon (never raised)."""
        entries = self.entries()
        default = entries.get(ALL_TENANTS, PolicyEntry(ALL_TENANTS, DEFAULT_CAP)).cap

        def cap(tenant_id: str) -> BudgetCap:
            found = entries[tenant_id].cap if tenant_id in entries else default
            if lower_to is not None and lower_to < found.per_window:
                return BudgetCap(lower_to, found.window_s)
            return found

        return cap

    def set(self, cap: BudgetCap, *, tenant_id: str = ALL_TENANTS, actor: str, reason: str = "",
            ledger: Ledger | None) -> PolicyChange:
        """Put ``cap`` in force for ``tenant_id`` ('' = every tenant without its own).

        A raise needs an ``actor``, a ``reason`` and a ``ledger`` that exists: its ledger entry is
        written before the policy row, so no raise is ever in force unrecorded. A lowering is recorded
        in the ledger when there is one. BudgetPolicyError when refused; the ledger's and store's
        errors (LedgerError, PersonalDataError, StoreError) propagate, and then nothing changed.
        """
        if not self.exists():
            raise BudgetPolicyError(f"no table {self.table}: run `sovtel schema migrate` on this store first")
        if not (cap.per_window > 0 and math.isfinite(cap.per_window)):
            raise BudgetPolicyError("the budget must be a positive number of epsilon")
        previous = self.in_force(tenant_id).cap
        raising = is_raise(previous, cap)
        change = "raise" if raising else ("same" if cap == previous else "lower")
        has_ledger = ledger is not None and ledger.exists()
        if raising:
            if not actor.strip() or not reason.strip():
                raise BudgetPolicyError("raising a privacy budget is an administrative act: give --actor and --reason")
            if not has_ledger:
                raise BudgetPolicyError("raising a privacy budget must be recorded in the AI-Act ledger, and this "
                                        "store has none (name it with --aiact-database)")
        seq = 0
        if has_ledger and ledger is not None:
            try:
                entry = ledger.append(f"dp.budget.{change}", {
                    "database": self.database, "tenant_id": tenant_id, "per_window": cap.per_window,
                    "window_s": cap.window_s, "previous_per_window": previous.per_window,
                    "previous_window_s": previous.window_s, "reason": reason,
                }, actor=actor or None)
            except LedgerError as exc:
                raise BudgetPolicyError(f"the change could not be recorded in the ledger, so it was not made: {exc}"
                                        ) from exc
            seq = entry.seq
        row = pa.Table.from_pylist([{
            "at": dt.datetime.now(dt.UTC), "tenant_id": tenant_id, "per_window": cap.per_window,
            "window_s": cap.window_s, "previous_per_window": previous.per_window,
            "previous_window_s": previous.window_s, "change": change, "actor": actor, "reason": reason,
            "ledger_seq": seq,
        }], schema=_SCHEMA)
        self.store.insert_arrow(self.table, row)
        return PolicyChange(tenant_id, previous, cap, change, seq or None)
