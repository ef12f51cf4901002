"""Adversarial readers against a real ``sovtel serve`` child on loopback: memory hogs, endless scans and
attempts to raise their own limits are refused with ClickHouse's error codes while the service keeps
answering and its resident memory stays bounded (measured from /proc).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.serve.config import DEFAULT_PROFILES, Role
from tests.storage.serve.conftest import ServedStore, start_server
from tests.waiting import wait_until

HOG = "SELECT length(groupArray(repeat('x', 1000))) FROM numbers(3000000)"
ENDLESS = "SELECT count() FROM numbers(10000000000) WHERE NOT ignore(toString(number))"
# 10^10 pairs from 2 x 10^5 rows read: within the row limit, and far beyond any machine's 10 seconds.
LONG = ("SELECT count() FROM numbers(100000) AS a CROSS JOIN numbers(100000) AS b "
        "WHERE NOT ignore(toString(a.number + b.number))")
# The reader's defaults, except a short max_execution_time so the time limit is seen within the test.
PROFILES = {"reader": {"settings": {"max_execution_time": 10}}}
READER_MEMORY = int(DEFAULT_PROFILES[Role.READER].settings["max_memory_usage"])
# Beyond the reader's per-query memory: the engine's caches, allocator slack and Python's own heap.
RSS_HEADROOM = 768 << 20

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to measure RSS")


def _memory_kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (VmRSS now, VmHWM its peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def served() -> Iterator[ServedStore]:
    """A `sovtel serve` child with the default reader profile (but a 10 s time limit)."""
    with tempfile.TemporaryDirectory(prefix="sovtel-adversarial-readers-") as tmp:
        server = start_server(Path(tmp), limits={"max_body_mb": 64}, profiles=PROFILES)
        try:
            yield server
        finally:
            server.close()


def test_memory_hogs_are_cut_and_rss_stays_bounded(served, record_property):
    """Eight concurrent 90-byte memory hogs are cut (241, or 159/202 when the two cores are slower than the
    limits) and peak RSS stays within the reader's four slots of memory, while an admin query is answered."""
    pid = served.proc.pid
    assert served.query("SELECT 1", user="reader").status == 200
    rss_before, peak_before = _memory_kib(pid, "VmRSS"), _memory_kib(pid, "VmHWM")
    codes: list[str | None] = []
    threads = [threading.Thread(target=lambda: codes.append(
        served.query(HOG, user="reader").header("X-ClickHouse-Exception-Code"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    meanwhile = served.query("SELECT 42", user="admin")
    for thread in threads:
        thread.join(60)
    rss_after, peak_after = _memory_kib(pid, "VmRSS"), _memory_kib(pid, "VmHWM")
    record_property("rss_kib", {"before": rss_before, "peak_before": peak_before, "after": rss_after,
                                "peak_after": peak_after})
    print(f"sovtel serve RSS: before {rss_before >> 10} MiB, peak {peak_after >> 10} MiB, after {rss_after >> 10} MiB")
    assert meanwhile.text == "42\n"
    assert len(codes) == 8 and set(codes) <= {"241", "159", "202"}
    # At most four reader queries run at once (the others wait for a slot), each stopped at
    # READER_MEMORY: one hog alone took 8.7 GB before limits existed.
    assert (peak_after << 10) - (rss_before << 10) < 4 * READER_MEMORY + RSS_HEADROOM
    assert served.query("SELECT 1", user="reader").status == 200
    # Refused hogs hand their memory back: RSS returns near where it started.
    settled = wait_until(lambda: (_memory_kib(pid, "VmRSS") << 10) < (rss_before << 10) + RSS_HEADROOM, 30)
    print(f"sovtel serve RSS settled at {_memory_kib(pid, 'VmRSS') >> 10} MiB")
    assert settled


def test_endless_scan_is_refused_before_reading(served):
    """numbers(1e10) is over the reader's max_rows_to_read: TOO_MANY_ROWS (158) at once."""
    response = served.query(ENDLESS, user="reader")
    assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (500, "158")


def test_long_scan_is_cut_at_the_time_limit(served):
    """A scan within the row limit stops at max_execution_time with TIMEOUT_EXCEEDED (159, HTTP 408)."""
    response = served.query(LONG, user="reader")
    assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (408, "159")


@pytest.mark.parametrize(("setting", "value"), [
    ("max_memory_usage", "100000000000"), ("max_memory_usage", "0"), ("max_execution_time", "0"),
    ("max_execution_time", "100000"), ("max_rows_to_read", "0"), ("max_result_bytes", "0"),
])
def test_reader_cannot_raise_its_limits_through_the_url(served, setting, value):
    """Every attempt to raise or lift a limit in the URL is SETTING_CONSTRAINT_VIOLATION (452)."""
    response = served.query(HOG, user="reader", **{setting: value})
    assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (500, "452")


def test_reader_cannot_escape_through_settings_or_profiles(served):
    """SETTINGS clauses and profile switches are refused too (read-only mode, then access denied)."""
    clause = served.query(HOG + " SETTINGS max_memory_usage = 0", user="reader")
    switch = served.query("SET profile = 'default'", user="reader")
    assert clause.header("X-ClickHouse-Exception-Code") in ("164", "452")
    assert switch.header("X-ClickHouse-Exception-Code") == "497"
