"""Tests for app.query: only read-only statements reach the store."""

from __future__ import annotations

import pytest

from app.query import QueryError, check_read_only


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select count() from sovtel.spans;",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW TABLES FROM sovtel",
        "DESCRIBE TABLE sovtel.spans",
        "EXPLAIN SELECT 1",
        "-- a comment\nSELECT 1",
        "(SELECT 1) UNION ALL (SELECT 2)",
    ],
)
def test_read_only_statements_pass(sql: str) -> None:
    """SELECT-like statements are accepted."""
    check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("INSERT INTO t VALUES (1)", "INSERT is not allowed"),
        ("DROP TABLE sovtel.spans", "DROP is not allowed"),
        ("ALTER TABLE sovtel.spans DELETE WHERE 1", "ALTER is not allowed"),
        ("SELECT 1; DROP TABLE x", "one statement at a time"),
        ("/* SELECT */ TRUNCATE TABLE x", "TRUNCATE is not allowed"),
        ("   ", "empty query"),
        ("SET readonly = 0", "SET is not allowed"),
    ],
)
def test_writes_and_multi_statements_are_refused(sql: str, needle: str) -> None:
    """Statements that could change data are refused with exit code 2 and a message saying why."""
    with pytest.raises(QueryError, match=needle) as exc:
        check_read_only(sql)
    assert exc.value.exit_code == 2
