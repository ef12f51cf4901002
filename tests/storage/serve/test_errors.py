"""Error codes and HTTP statuses as ClickHouse reports them, and engine errors passed through unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.serve.engine import Engine
from storage.serve.errors import NAMES, ServeError, engine_error, http_status


@pytest.fixture(scope="module")
def names_in_engine(chdb_dir: Path) -> dict[int, str]:
    """The engine's own name for each code this server raises."""
    engine = Engine(chdb_dir)
    conn = engine.connect()
    try:
        listed = ", ".join(str(c) for c in NAMES)
        rows = conn.text(f"SELECT number, errorCodeToName(number) FROM numbers(2000) WHERE number IN ({listed})")
        return {int(n): name for n, name in (line.split("\t") for line in rows.splitlines())}
    finally:
        conn.close()
        engine.close()


def test_codes_match_the_engine(names_in_engine):
    """Every code this server raises has the name ClickHouse gives it."""
    assert names_in_engine == NAMES


@pytest.mark.parametrize(
    ("code", "status"),
    [(194, 401), (516, 403), (497, 403), (62, 400), (27, 400), (60, 404), (46, 404), (73, 404), (229, 413),
     (48, 501), (159, 408), (164, 500), (395, 500), (373, 500), (1002, 500)],
)
def test_http_status(code, status):
    """Codes map to ClickHouse's HTTP statuses; anything unlisted is 500."""
    assert http_status(code) == status


@pytest.mark.parametrize(
    ("raised", "code", "text"),
    [
        (RuntimeError("Streaming query failed: Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)"), 60,
         "Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)"),
        (RuntimeError("Code: 62. DB::Exception: Syntax error"), 62, "Code: 62. DB::Exception: Syntax error"),
        (RuntimeError("something odd"), 1002, "Code: 1002. DB::Exception: something odd. (UNKNOWN_EXCEPTION)"),
    ],
)
def test_engine_errors_keep_code_and_text(raised, code, text):
    """The engine's code and message come through; chDB's wrapper text is cut off."""
    error = engine_error(raised)
    assert (error.code, error.text) == (code, text)
    assert error.body() == text.encode() + b"\n"


def test_own_errors_read_like_clickhouse():
    """The server's own errors have ClickHouse's text shape, with the code's name."""
    assert ServeError(497, "no").text == "Code: 497. DB::Exception: no. (ACCESS_DENIED)"
