"""Tests for sovtel.dedup (the resend window) and sovtel.admission (rows older than a sink's retention)."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from sovtel.admission import RetentionGate, sink_retention
from sovtel.dedup import (
    Answer,
    DedupConfig,
    DedupWindow,
    dedup_config,
    first_occurrences,
    request_digest,
    span_keys,
)
from sovtel.records import Batch, Signal, table_from_columns


class Clock:
    """A settable clock, so window expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def ids(n: int, start: int = 0) -> tuple[list[str], list[str]]:
    """``n`` distinct (trace id, span id) pairs in OTLP's lower-case hex."""
    return [f"{7:016x}{i:016x}" for i in range(start, start + n)], [f"{i + 1:016x}" for i in range(start, start + n)]


def span_table(n: int, start: int = 0) -> pa.Table:
    trace, span = ids(n, start)
    return table_from_columns(Signal.TRACES, {"trace_id": trace, "span_id": span})


class TestSpanKeys:
    def test_hex_ids_become_three_lanes(self) -> None:
        """A 32-hex trace id and a 16-hex span id decode to their 24 bytes as three big-endian uint64 lanes."""
        t = table_from_columns(Signal.TRACES, {"trace_id": ["0102030405060708A0B0C0D0E0F00001"],
                                               "span_id": ["00000000000000ff"]})
        keys, ok = span_keys(t)
        assert ok.tolist() == [True]
        assert keys.tolist() == [[0x0102030405060708, 0xA0B0C0D0E0F00001, 0xFF]]

    @pytest.mark.parametrize(("trace", "span"), [
        ("abc", "0" * 16),  # too short
        ("z" * 32, "0" * 16),  # not hex
        ("0" * 32, ""),  # no span id
        ("0" * 32, "0" * 15 + "g"),
    ])
    def test_rows_without_a_valid_identity_are_never_keys(self, trace: str, span: str) -> None:
        """A row whose ids are not 32 + 16 hex characters has no identity, so it can never be taken for a resend."""
        _, ok = span_keys(table_from_columns(Signal.TRACES, {"trace_id": [trace], "span_id": [span]}))
        assert ok.tolist() == [False]

    def test_sliced_and_chunked_columns_decode_like_whole_ones(self) -> None:
        """Keys do not depend on how the table is chunked or sliced."""
        whole, _ = span_keys(span_table(10))
        chunked = pa.concat_tables([span_table(4), span_table(6, start=4)])
        assert np.array_equal(span_keys(chunked)[0], whole)
        assert np.array_equal(span_keys(span_table(10).slice(3, 5))[0], whole[3:8])

    def test_repeats_inside_one_batch_are_found(self) -> None:
        """first_occurrences keeps the first row of each identity and marks its repeats."""
        keys, _ = span_keys(pa.concat_tables([span_table(3), span_table(2)]))
        assert first_occurrences(keys).tolist() == [True, True, True, False, False]


class TestDedupWindow:
    def test_remembered_keys_are_seen_and_others_not(self) -> None:
        """A key remembered is seen again; a different key is not (exact identities, no hash decides alone)."""
        window = DedupWindow()
        keys, _ = span_keys(span_table(1000))
        window.remember(keys[:500])
        assert window.seen(keys).tolist() == [True] * 500 + [False] * 500

    def test_keys_are_kept_for_the_window_and_forgotten_after(self) -> None:
        """A key is seen for at least window_s and forgotten once the window has passed."""
        clock = Clock()
        window = DedupWindow(DedupConfig(window_s=60), clock=clock)
        keys, _ = span_keys(span_table(10))
        window.remember(keys)
        clock.now += 59
        assert window.seen(keys).all()
        clock.now += 60 * 1.1 + 1
        assert not window.seen(keys).any()
        assert window.entries == 0

    def test_memory_is_bounded_by_max_entries(self) -> None:
        """Past max_entries the oldest slices are forgotten (counted), so memory stays at 32 bytes per entry."""
        clock = Clock()
        window = DedupWindow(DedupConfig(window_s=100, max_entries=5_000), clock=clock)
        for i in range(40):
            window.remember(span_keys(span_table(1_000, start=i * 1_000))[0])
            clock.now += 2
            assert window.entries <= 5_000
        assert window.evicted == 35_000
        assert window.nbytes <= 5_000 * 32
        assert window.seen(span_keys(span_table(1_000, start=39_000))[0]).all()

    def test_many_small_batches_stay_few_sorted_runs(self) -> None:
        """Runs are merged as they come, so a lookup searches O(log n) arrays, not one per batch."""
        window = DedupWindow()
        for i in range(256):
            window.remember(span_keys(span_table(20, start=i * 20))[0])
        runs = sum(len(g.runs) for g in window._generations)
        assert runs <= 10
        assert window.seen(span_keys(span_table(5_120))[0]).all()

    def test_request_answers_are_replayed_within_the_window(self) -> None:
        """A request digest remembers the answer it got, until the window passes."""
        clock = Clock()
        window = DedupWindow(DedupConfig(window_s=10), clock=clock)
        window.remember_request("d1", Answer(2, {"older_than_retention": 2}))
        assert window.answer("d1") == Answer(2, {"older_than_retention": 2})
        assert window.answer("d2") is None
        clock.now += 12
        assert window.answer("d1") is None

    def test_identical_log_requests_have_identical_digests(self) -> None:
        """Two decodings of the same log records give the same digest; other records another; spans none."""
        def logs(body: str) -> Batch:
            return Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {"body": [body, "b"], "timestamp": [1, 2]}))
        assert request_digest(logs("a")) == request_digest(logs("a"))
        assert request_digest(logs("a")) != request_digest(logs("c"))
        assert request_digest(Batch(Signal.TRACES, span_table(2))) is None

    def test_config_has_defaults_and_refuses_unknown_keys(self) -> None:
        """A pipeline without a dedup section gets the defaults; a misspelt key is an error."""
        assert dedup_config(object()) == DedupConfig()
        assert DedupConfig().window_s == 300
        with pytest.raises(ValidationError):
            DedupConfig.model_validate({"window": 10})
        with pytest.raises(ValidationError):
            DedupConfig.model_validate({"max_entries": 10})


class Sink:
    """A sink configuration that declares a retention section, as the clickhouse exporter's does."""

    class Retention:
        def __init__(self, personal: int, operational: int) -> None:
            self.personal_days, self.operational_days = personal, operational

    def __init__(self, personal: int = 30, operational: int = 395) -> None:
        self.retention = Sink.Retention(personal, operational)


def aged(days: list[float], tiers: list[str]) -> Batch:
    now = time.time_ns()
    ts = [now - int(d * 86_400e9) for d in days]
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {"timestamp": ts, "tier": tiers}))


class TestRetentionGate:
    def test_sink_retention_follows_the_signal(self) -> None:
        """Spans and logs keep personal_days, metrics operational_days; a sink without a section has no limit."""
        assert sink_retention(Sink(45, 400), Signal.TRACES) == dt.timedelta(days=45)
        assert sink_retention(Sink(45, 400), Signal.LOGS) == dt.timedelta(days=45)
        assert sink_retention(Sink(45, 400), Signal.METRICS) == dt.timedelta(days=400)
        assert sink_retention(object(), Signal.TRACES) is None

    def test_rows_older_than_the_retention_are_dropped(self) -> None:
        """Rows older than the sink's retention are dropped and counted; the rest pass untouched."""
        gate = RetentionGate({"ch": frozenset({"local", "sovereign", "public"})}, {"ch": dt.timedelta(days=30)})
        batch, old = gate.admit(aged([0, 29.9, 30.1, 20_000], ["local"] * 4))
        assert old == 2
        assert batch.rows == 2

    def test_the_longest_keeping_sink_of_a_tier_decides(self) -> None:
        """A row is dropped only if no sink it is routed to would keep it; unknown tiers count as local."""
        gate = RetentionGate(
            {"short": frozenset({"local", "sovereign"}), "long": frozenset({"sovereign"})},
            {"short": dt.timedelta(days=30), "long": dt.timedelta(days=90)},
        )
        batch, old = gate.admit(aged([40, 40, 40, 100], ["local", "sovereign", "bogus", "sovereign"]))
        assert old == 3
        assert batch.table.column("tier").to_pylist() == ["sovereign"]

    def test_a_sink_without_retention_limits_nothing(self) -> None:
        """When any sink of a tier declares no retention, that tier's old rows are kept."""
        gate = RetentionGate({"a": frozenset({"local"}), "b": frozenset({"local"})}, {"a": dt.timedelta(days=30)})
        assert not gate.active
        assert gate.admit(aged([400], ["local"]))[1] == 0
