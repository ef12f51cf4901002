"""Tests for app.query: only read-only statements reach the store."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

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


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Log records of the HTTP libraries (``2026-… WARNING urllib3…``) come from the logging configuration,
# not from the command's error handling; the command's own output is what must be one line.
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) ")


def run_sovtel(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Run the real ``sovtel`` entry point in a process; exit code, its own stderr lines, and all stderr."""
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2], check=False,
                          env={**os.environ, **(env or {})})
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not _LOG_RECORD.match(line)]
    return proc.returncode, lines, proc.stderr


def test_query_against_an_unreachable_store_is_one_line() -> None:
    """`sovtel query` with a store URL that does not answer exits non-zero with one line, no traceback."""
    code, lines, stderr = run_sovtel("query", "--url", f"http://reader@127.0.0.1:{closed_port()}", "SELECT 1")
    assert code != 0
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("sovtel query: "), stderr
