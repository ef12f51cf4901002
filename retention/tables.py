"""What the retention jobs know about a database's tables, read from ``system.tables`` and ``system.columns``:
each MergeTree table's TTL (time expression, amount, unit), partition key and subject columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from storage.backend import Store

# Columns that hold a data subject's identifier (pseudonymised or not), per design §4/§5.
SUBJECT_COLUMNS: tuple[str, ...] = ("user_id", "session_id", "tenant_id", "conversation_id")

# Time columns tried, in order, when a table has no TTL to read its time expression from.
TIME_COLUMN_NAMES: tuple[str, ...] = ("timestamp", "minute", "day", "bucket", "computed_at", "recorded_at")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TTL = re.compile(
    r"\bTTL\s+(?P<expr>.+?)\s*\+\s*toInterval(?P<unit>Second|Minute|Hour|Day|Week|Month|Quarter|Year)\((?P<n>\d+)\)"
)
UNITS: tuple[str, ...] = ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR")


class CatalogError(Exception):
    """A database or table is not what the retention jobs expect (missing, unsafe name)."""


def quote_identifier(name: str) -> str:
    """A backquoted identifier; names are checked to be plain identifiers before they reach SQL."""
    if not _IDENTIFIER.match(name):
        raise CatalogError(f"{name!r} is not a plain identifier (letters, digits, underscore)")
    return f"`{name}`"


@dataclass(frozen=True)
class Interval:
    """A retention period as ClickHouse writes it: ``30 DAY``, ``10 YEAR``."""

    amount: int
    unit: str

    def sql(self) -> str:
        """``INTERVAL 30 DAY``."""
        return f"INTERVAL {int(self.amount)} {self.unit}"

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.lower()}{'s' if self.amount != 1 else ''}"

    @property
    def approx_days(self) -> float:
        """The period in days (a month as 30.44 days, a year as 365.25), for display and sorting."""
        per_day = {"SECOND": 1 / 86400, "MINUTE": 1 / 1440, "HOUR": 1 / 24, "DAY": 1.0, "WEEK": 7.0,
                   "MONTH": 30.44, "QUARTER": 91.31, "YEAR": 365.25}
        return self.amount * per_day[self.unit]


@dataclass(frozen=True)
class TableInfo:
    """One MergeTree table: its TTL as found, the expression rows age by, and its columns."""

    database: str
    name: str
    engine: str
    partition_key: str
    columns: Mapping[str, str] = field(default_factory=dict)
    ttl: Interval | None = None
    # The time expression the TTL adds its interval to (e.g. ``toDateTime(timestamp)``).
    time_expr: str | None = None
    ttl_only_drop_parts: bool = False

    @property
    def qualified(self) -> str:
        """``db.table`` with both parts quoted."""
        return f"{quote_identifier(self.database)}.{quote_identifier(self.name)}"

    @property
    def label(self) -> str:
        """``db.table`` for messages."""
        return f"{self.database}.{self.name}"

    @property
    def subject_columns(self) -> tuple[str, ...]:
        """The subject identifier columns this table has."""
        return tuple(c for c in SUBJECT_COLUMNS if c in self.columns)

    @property
    def string_map_columns(self) -> tuple[str, ...]:
        """Map(…String, String) columns (attribute maps whose values may carry pseudonyms)."""
        return tuple(c for c, t in self.columns.items() if t.startswith("Map(") and t.endswith(", String)"))

    def expired_sql(self, interval: Interval) -> str:
        """SQL that is true for rows older than ``interval``, written exactly like a TTL clause."""
        if self.time_expr is None:
            raise CatalogError(f"{self.label} has no time column the retention policy could use")
        return f"({self.time_expr} + {interval.sql()} <= now())"


def _time_fallback(columns: Mapping[str, str]) -> str | None:
    for name in TIME_COLUMN_NAMES:
        ctype = columns.get(name, "")
        if ctype.startswith(("DateTime", "Date")):
            return f"toDateTime({quote_identifier(name)})"
    return None


def parse_ttl(engine_full: str) -> tuple[str, Interval] | None:
    """The (time expression, interval) of the first ``TTL expr + toIntervalX(n)`` in ``engine_full``."""
    m = _TTL.search(engine_full)
    if m is None:
        return None
    return m.group("expr").strip(), Interval(int(m.group("n")), m.group("unit").upper())


def database_exists(store: Store, database: str) -> bool:
    """Whether ``database`` exists in the store."""
    rows = store.query_rows("SELECT count() FROM system.databases WHERE name = {db:String}", {"db": database})
    return bool(rows and rows[0][0])


def discover(store: Store, database: str) -> list[TableInfo]:
    """Every MergeTree-family table of ``database`` (bookkeeping tables starting with ``_`` excluded)."""
    quote_identifier(database)
    if not database_exists(store, database):
        raise CatalogError(f"database {database} does not exist in {store.target} (run 'sovtel schema migrate')")
    tables = store.query_rows(
        "SELECT name, engine, engine_full, partition_key FROM system.tables "
        "WHERE database = {db:String} AND engine LIKE '%MergeTree' AND NOT startsWith(name, '_') ORDER BY name",
        {"db": database},
    )
    columns: dict[str, dict[str, str]] = {}
    for table, column, ctype in store.query_rows(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position",
        {"db": database},
    ):
        columns.setdefault(str(table), {})[str(column)] = str(ctype)
    out: list[TableInfo] = []
    for name, engine, engine_full, partition_key in tables:
        cols = columns.get(str(name), {})
        parsed = parse_ttl(str(engine_full))
        out.append(
            TableInfo(
                database=database,
                name=str(name),
                engine=str(engine),
                partition_key=str(partition_key),
                columns=cols,
                ttl=parsed[1] if parsed else None,
                time_expr=parsed[0] if parsed else _time_fallback(cols),
                ttl_only_drop_parts="ttl_only_drop_parts = 1" in str(engine_full),
            )
        )
    return out
