"""Per-role settings profiles: limits the engine enforces (memory, time, rows read, result size), constraints
users cannot step outside (452), per-role concurrency (202), the profile file's validation, and readable errors.
"""

from __future__ import annotations

import base64
import http.client
import threading
from typing import Any

import pytest

from storage.serve.config import ServeConfigError, parse_serve_config
from tests.storage.serve.conftest import USERS
from tests.waiting import wait_until

SERVE_PROFILES: dict[str, Any] = {
    "reader": {"max_concurrent_queries": 4, "settings": {
        "max_memory_usage": 200_000_000, "max_execution_time": 1, "max_result_rows": 100_000}},
    "writer": {"max_concurrent_queries": 1, "queue_max_wait_ms": 100,
               "settings": {"max_memory_usage": 300_000_000, "max_execution_time": 30}},
}
HOG = "SELECT length(groupArray(repeat('x', 1000))) FROM numbers(3000000)"


def _code(response: Any) -> str | None:
    return response.header("X-ClickHouse-Exception-Code")


class TestEngineEnforcedLimits:
    """Each limit of the reader's profile cuts a query with ClickHouse's error code."""

    def test_memory_hog_is_refused(self, served):
        """The 90-byte memory hog stops at the reader's max_memory_usage with MEMORY_LIMIT_EXCEEDED (241)."""
        response = served.query(HOG, user="reader")
        assert (response.status, _code(response)) == (500, "241")
        assert "(MEMORY_LIMIT_EXCEEDED)" in response.text

    def test_rows_to_read_beyond_the_limit_are_refused(self, served):
        """numbers(1e10) is over the default max_rows_to_read (5e9): TOO_MANY_ROWS (158) before reading."""
        response = served.query("SELECT sum(number) FROM numbers(10000000000)", user="reader")
        assert (response.status, _code(response)) == (500, "158")

    def test_long_query_is_cut_at_max_execution_time(self, served):
        """A scan that would take seconds stops at the reader's 1 s with TIMEOUT_EXCEEDED (159, HTTP 408)."""
        response = served.query("SELECT count() FROM numbers(100000) AS a CROSS JOIN numbers(100000) AS b "
                                "WHERE NOT ignore(toString(a.number + b.number))",
                                user="reader")
        assert (response.status, _code(response)) == (408, "159")

    def test_result_rows_beyond_the_limit_are_refused(self, served):
        """A result over max_result_rows is TOO_MANY_ROWS_OR_BYTES (396), not a truncated 200."""
        response = served.query("SELECT number FROM numbers(200000)", user="reader")
        assert (response.status, _code(response)) == (500, "396")

    def test_limits_do_not_touch_admin(self, served):
        """The admin profile has no limits: the same result size is answered."""
        response = served.query("SELECT count() FROM (SELECT number FROM numbers(200000))", user="admin")
        assert (response.status, response.text) == (200, "200000\n")


class TestConstraints:
    """Users may lower their limits, never raise or remove them, by any route."""

    @pytest.mark.parametrize(("setting", "value"), [
        ("max_memory_usage", "10000000000"), ("max_memory_usage", "0"), ("max_execution_time", "3600"),
        ("max_execution_time", "0"), ("max_rows_to_read", "0"), ("max_result_rows", "100000000"),
    ])
    def test_reader_cannot_raise_a_limit_in_the_url(self, served, setting, value):
        """A URL setting beyond the reader's constraint is SETTING_CONSTRAINT_VIOLATION (452)."""
        response = served.query("SELECT 1", user="reader", **{setting: value})
        assert (response.status, _code(response)) == (500, "452")
        assert "(SETTING_CONSTRAINT_VIOLATION)" in response.text

    def test_reader_may_lower_a_limit_in_the_url(self, served):
        """Within the constraint a reader's URL setting applies to its query."""
        response = served.query("SELECT getSetting('max_result_rows')", user="reader", max_result_rows="10")
        assert (response.status, response.text) == (200, "10\n")

    def test_reader_cannot_change_an_unconstrained_setting(self, served):
        """Settings outside the profile stay read-only for readers (READONLY, 164), as with readonly = 1."""
        response = served.query("SELECT 1", user="reader", max_threads="64")
        assert _code(response) == "164"

    def test_reader_cannot_raise_a_limit_in_the_statement(self, served):
        """A SETTINGS clause cannot raise a reader's limit either."""
        response = served.query("SELECT 1 SETTINGS max_memory_usage = 0", user="reader")
        assert _code(response) in ("164", "452")

    @pytest.mark.parametrize("sql", [
        "SELECT 1 SETTINGS max_memory_usage = 0",
        "SELECT 1 SETTINGS max_execution_time = 100000",
        "SET max_memory_usage = 99000000000",
    ])
    def test_writer_cannot_raise_a_limit_in_the_statement(self, served, sql):
        """The engine holds a writer to its constraints in SET statements and SETTINGS clauses (452)."""
        response = served.query(sql, user="writer")
        assert (response.status, _code(response)) == (500, "452")

    def test_writer_cannot_raise_a_limit_in_a_session(self, served):
        """A session keeps the constraints: SET beyond them is refused and the limit stays."""
        refused = served.query("SET max_memory_usage = 0", user="writer", session_id="limits-1")
        kept = served.query("SELECT getSetting('max_memory_usage')", user="writer", session_id="limits-1")
        assert (_code(refused), kept.text) == ("452", "300000000\n")

    @pytest.mark.parametrize("sql", ["SET profile = 'default'", "SELECT 1 SETTINGS profile = 'default'"])
    def test_selecting_a_profile_is_refused(self, served, sql):
        """Non-admin users cannot select another settings profile (ACCESS_DENIED, 497)."""
        response = served.query(sql, user="writer")
        assert (response.status, _code(response)) == (403, "497")


class TestConcurrency:
    """Each role's max_concurrent_queries is shared by its users; a query beyond it gets 202."""

    def test_query_beyond_the_role_limit_is_refused(self, served):
        """With one writer INSERT in flight, the next writer query is TOO_MANY_SIMULTANEOUS_QUERIES; readers run."""
        served.query("CREATE TABLE IF NOT EXISTS default.limits_slots (n UInt64) ENGINE = MergeTree ORDER BY n")
        conn = http.client.HTTPConnection(served.host, served.port, timeout=60)
        auth = "Basic " + base64.b64encode(f"writer:{USERS['writer'][2]}".encode()).decode()
        conn.putrequest("POST", "/")
        conn.putheader("Authorization", auth)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        # More than the service reads to find the statement (64 KiB), so the INSERT is running when it waits.
        head = b"INSERT INTO default.limits_slots FORMAT TSV\n" + b"1\n" * 50_000
        conn.send(b"%x\r\n" % len(head) + head + b"\r\n")
        try:
            def second_refused() -> Any:
                response = served.query("SELECT 1", user="writer")
                return response if _code(response) == "202" else None

            refused = wait_until(second_refused, timeout=30)
            last = served.query("SELECT 1", user="writer")
            assert refused is not None and "Maximum: 1" in refused.text, (last.status, last.text)
            assert served.query("SELECT 1", user="reader").status == 200
        finally:
            conn.send(b"2\r\n2\n\r\n0\r\n\r\n")  # the last row, then the end of the body
            finished = conn.getresponse()
            finished.read()
            conn.close()
        assert finished.status == 200
        assert served.query("SELECT count() FROM default.limits_slots", user="writer").text == "50001\n"

    def test_service_stays_responsive_while_readers_hit_limits(self, served):
        """Concurrent memory hogs are all refused and a small query is still answered meanwhile."""
        results: list[str | None] = []
        threads = [threading.Thread(target=lambda: results.append(_code(served.query(HOG, user="reader"))))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        ok = served.query("SELECT 42", user="admin")
        for thread in threads:
            thread.join(60)
        assert ok.text == "42\n"
        assert len(results) == 3 and set(results) <= {"241", "202"}


class TestReadableErrors:
    """Errors speak of the user's statement."""

    def test_syntax_error_quotes_the_users_statement(self, served):
        """A syntax error names the statement sent, never the service's own parsing query."""
        response = served.query("SELEC 1", user="reader")
        assert (response.status, _code(response)) == (400, "62")
        assert "normalizeQuery" not in response.text and "formatQuery" not in response.text
        assert "In query: SELEC 1. (SYNTAX_ERROR)" in response.text

    def test_limit_failure_before_output_is_an_error_status(self, served):
        """A limit hit after some blocks but within the first buffer gets an error status, not 200 + rows."""
        response = served.query("SELECT toString(number) FROM numbers(150000)", user="reader")
        assert (response.status, _code(response)) == (500, "396")
        assert response.header("X-ClickHouse-Exception-Tag") is None and response.text.startswith("Code: 396.")


class TestProfileFile:
    """The profiles section of the users file is checked before the server starts."""

    def test_defaults_cap_readers(self):
        """Without a profiles section readers get bounded memory, time, rows and concurrency."""
        reader = parse_serve_config({"users": []}).profiles.reader
        assert reader.max_concurrent_queries == 4 and reader.queue_max_wait_ms == 5000
        assert {"max_memory_usage", "max_execution_time", "max_rows_to_read", "max_result_rows",
                "max_result_bytes"} <= set(reader.effective_constraints())

    def test_given_settings_lay_over_the_defaults(self):
        """A profile that names one setting keeps the role's other defaults."""
        reader = parse_serve_config({"profiles": {"reader": {"settings": {"max_execution_time": 5}}}}).profiles.reader
        assert reader.settings["max_execution_time"] == 5 and reader.settings["max_memory_usage"] == 1 << 30

    @pytest.mark.parametrize(("profiles", "message"), [
        ({"reader": {"settings": {"max_execution_time": 200}, "constraints": {"max_execution_time": {"max": 100}}}},
         "above its constraint's max"),
        ({"reader": {"settings": {"readonly": 0}}}, "decided by the role"),
        ({"writer": {"constraints": {"max_threads": {"min": 8, "max": 2}}}}, "greater than max"),
        ({"reader": {"max_concurrent_queries": 0}}, "greater than or equal to 1"),
        ({"auditor": {}}, "unknown key"),
    ])
    def test_invalid_profiles_are_refused(self, profiles, message):
        """Values outside their own constraints, role-decided settings and unknown roles fail validation."""
        with pytest.raises(ServeConfigError) as caught:
            parse_serve_config({"profiles": profiles})
        assert message in str(caught.value)
