"""Read-only SQL for people: ``sovtel query`` against an embedded store or a ClickHouse HTTP endpoint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Statements that only read. Anything else is refused before it reaches the store, and the store
# is additionally asked to run the query with readonly=1 where the connection allows it.
_READ_ONLY = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


class QueryError(Exception):
    """The query could not be run; ``exit_code`` is 2 for bad input, 1 for a failure at run time."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_read_only(sql: str) -> None:
    """Raise QueryError (exit 2) unless ``sql`` is a single read-only statement."""
    body = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).strip().rstrip(";").strip()
    if not body:
        raise QueryError("empty query", 2)
    if ";" in body:
        raise QueryError("one statement at a time", 2)
    if not _READ_ONLY.match(body):
        first = body.split(None, 1)[0].upper()
        raise QueryError(f"{first} is not allowed: sovtel query runs read-only statements (SELECT, SHOW, …)", 2)


def run_query(
    sql: str, store: Path | None = None, url: str | None = None, password_env: str | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement; return column names and rows."""
    from app.store import StoreOptionError, store_from_options
    from storage.backend import StoreError

    check_read_only(sql)
    try:
        db = store_from_options(store, url, password_env=password_env)
    except StoreOptionError as exc:
        raise QueryError(exc.message, 2) from exc
    try:
        from retention.ledger import record_query_access

        table = db.query_arrow(record_query_access(db, sql), settings={"readonly": 1})
    except StoreError as exc:
        raise QueryError(str(exc)) from exc
    finally:
        db.close()
    columns = list(table.column_names)
    rows = list(zip(*(table.column(c).to_pylist() for c in columns), strict=True)) if columns else []
    return columns, rows
