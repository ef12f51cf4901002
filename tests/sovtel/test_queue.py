"""The durable queue: fsynced puts, claimed groups replayed identically, byte budget, resume and exclusivity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from sovtel.component import Backpressure, ExportResult
from sovtel.queue import (
    DEDUP_TOKEN,
    DurableBuffer,
    QueuedExporter,
    QueueInUseError,
    QueueSettings,
    dedup_token,
    queue_file,
    queued_rows,
    rows_token,
)
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry


def spans(n: int, start: int = 0) -> Batch:
    ids = [f"{i:032x}" for i in range(start, start + n)]
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {"trace_id": ids, "span_id": ids}))


def logs(n: int) -> Batch:
    return Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {"body": [f"l{i}" for i in range(n)]}))


class Recording:
    """An exporter double: records batches, or answers RETRYABLE while ``down``."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.down = False

    def start(self) -> None:
        pass

    def export(self, batch: Batch) -> ExportResult:
        if self.down:
            return ExportResult.RETRYABLE
        self.batches.append(batch)
        return ExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class TestDurableBuffer:
    def test_groups_coalesce_batches_of_one_signal_in_order(self, tmp_path: Path) -> None:
        """take combines queued batches oldest first up to max_rows, never mixing signals."""
        buf = DurableBuffer(tmp_path / "q.sqlite")
        for k in range(5):
            buf.put(spans(100, start=k * 100))
        buf.put(logs(7))
        first = buf.take(300)
        assert first is not None and first.batch.rows == 300
        assert first.batch.table.column("trace_id").to_pylist() == [f"{i:032x}" for i in range(300)]
        buf.ack(first)
        second = buf.take(10_000)
        assert second is not None and second.batch.rows == 200 and second.batch.signal is Signal.TRACES
        buf.ack(second)
        third = buf.take(10_000)
        assert third is not None and third.batch.signal is Signal.LOGS and third.batch.rows == 7
        buf.ack(third)
        assert buf.take(10) is None and buf.pending_rows == 0 and buf.pending_bytes == 0
        buf.close()

    def test_unacknowledged_group_is_replayed_identically_after_reopen(self, tmp_path: Path) -> None:
        """A group taken but not acknowledged comes back first after a restart, with the same dedup token."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        for k in range(4):
            buf.put(spans(50, start=k * 50))
        taken = buf.take(120)
        assert taken is not None
        token = dedup_token(taken.batch)
        buf.put(spans(10, start=1000))  # arrives while the group is in flight
        buf.close()  # the process "dies" before the ack

        again = DurableBuffer(path)
        assert again.pending_rows == 210 and again.ready_rows == 210
        replay = again.take(10_000)  # a larger limit must not change the replayed group
        assert replay is not None and replay.batch.rows == taken.batch.rows
        assert dedup_token(replay.batch) == token
        again.ack(replay)
        rest = again.take(10_000)
        assert rest is not None and rest.batch.rows == 110
        again.ack(rest)
        assert again.pending_rows == 0
        again.close()

    def test_byte_budget_bounds_what_fits(self, tmp_path: Path) -> None:
        """Once stored bytes reach max_bytes nothing more fits, until a group is acknowledged."""
        probe = spans(200)
        buf = DurableBuffer(tmp_path / "q.sqlite", max_bytes=int(probe.table.nbytes * 2.5))
        assert buf.fits(probe)
        buf.put(probe)
        buf.put(spans(200, start=200))
        assert not buf.fits(spans(200, start=400))
        taken = buf.take(200)
        assert taken is not None
        buf.ack(taken)
        assert buf.fits(spans(200, start=400))
        buf.close()

    def test_a_second_process_cannot_open_the_same_queue(self, tmp_path: Path) -> None:
        """One queue file has one owner: a second open fails fast instead of double-delivering."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        with pytest.raises(QueueInUseError):
            DurableBuffer(path)
        buf.close()
        DurableBuffer(path).close()

    def test_queued_rows_reads_without_the_lock(self, tmp_path: Path) -> None:
        """queued_rows reports rows on disk while the owner has the queue open (0 for no file)."""
        path = tmp_path / "q.sqlite"
        assert queued_rows(path) == 0
        buf = DurableBuffer(path)
        buf.put(spans(33))
        assert queued_rows(path) == 33
        buf.close()

    @pytest.mark.parametrize(("sink", "name"), [("clickhouse", "clickhouse.sqlite"),
                                                ("clickhouse/eu west", "clickhouse__eu__west.sqlite")])
    def test_queue_file_names_are_safe(self, tmp_path: Path, sink: str, name: str) -> None:
        """Sink names map to one flat file name each."""
        assert queue_file(tmp_path, sink) == tmp_path / name


class TestGroupTokens:
    def test_token_is_committed_with_the_claim_and_replayed(self, tmp_path: Path) -> None:
        """A group's token rides on Taken and in the batch meta, and comes back unchanged after a restart."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        for k in range(3):
            buf.put(spans(40, start=k * 40))
        taken = buf.take(80)
        assert taken is not None and taken.dedup_token is not None
        assert taken.batch.meta[DEDUP_TOKEN] == taken.dedup_token == dedup_token(taken.batch)
        buf.close()

        again = DurableBuffer(path)
        replay = again.take(10_000)
        assert replay is not None and replay.dedup_token == taken.dedup_token
        again.ack(replay)
        rest = again.take(10_000)
        assert rest is not None and rest.dedup_token not in (None, taken.dedup_token)
        again.ack(rest)
        again.close()

    def test_different_rows_or_signals_give_different_tokens(self, tmp_path: Path) -> None:
        """Groups of other rows (same count), other span ids or another signal never share a token."""
        buf = DurableBuffer(tmp_path / "q.sqlite")
        table = spans(10).table
        other_span_ids = Batch(Signal.TRACES, table.set_column(
            table.schema.get_field_index("span_id"), "span_id", pa.array([f"{i:016x}" for i in range(10)])))
        for batch in (spans(10), spans(10, start=10), other_span_ids, logs(10), logs(11)):
            buf.put(batch)
        tokens = []
        while (taken := buf.take(10)) is not None:
            tokens.append(taken.dedup_token)
            buf.ack(taken)
        assert len(tokens) == 5 == len(set(tokens)) and None not in tokens
        buf.close()

    def test_group_claimed_without_a_token_falls_back_to_its_rows(self, tmp_path: Path) -> None:
        """A group claimed by a release that kept no token is replayed with the token hashed from its rows."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        buf.put(spans(30))
        assert buf.take(100) is not None
        buf.close()
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM claims")
        again = DurableBuffer(path)
        replay = again.take(100)
        assert replay is not None and replay.dedup_token is None
        assert dedup_token(replay.batch) == rows_token(spans(30))
        again.ack(replay)
        again.close()


class TestDurableQueuedExporter:
    def queued(self, path: Path, exporter: Recording, max_bytes: int = 1 << 30) -> QueuedExporter:
        settings = QueueSettings(batch_rows=1000, max_delay_s=0.01, retry_initial_s=0.01, retry_max_s=0.02)
        q = QueuedExporter("ch", exporter, Telemetry().component("ch"), settings,  # type: ignore[arg-type]
                           buffer=DurableBuffer(path, max_bytes=max_bytes))
        q.start()
        return q

    def test_rows_left_at_shutdown_are_delivered_after_restart(self, tmp_path: Path) -> None:
        """With the sink down at shutdown, rows stay on disk and the next start delivers them once."""
        path = tmp_path / "q.sqlite"
        exp = Recording()
        exp.down = True
        q = self.queued(path, exp)
        for k in range(3):
            q.enqueue(spans(100, start=k * 100))
        q.shutdown(timeout=0.3)
        assert queued_rows(path) == 300 and exp.batches == []
        exp.down = False
        q2 = self.queued(path, exp)
        assert q2.flush(10)
        q2.shutdown()
        ids = pa.concat_tables([b.table for b in exp.batches]).column("trace_id").to_pylist()
        assert sorted(ids) == [f"{i:032x}" for i in range(300)]

    def test_full_budget_raises_backpressure(self, tmp_path: Path) -> None:
        """Beyond the disk budget enqueue refuses with Backpressure (retryable), never drops."""
        exp = Recording()
        exp.down = True
        q = self.queued(tmp_path / "q.sqlite", exp, max_bytes=int(spans(100).table.nbytes * 3))
        accepted = 0
        with pytest.raises(Backpressure):
            for k in range(10):
                q.enqueue(spans(100, start=k * 100))
                accepted += 100
        assert 0 < accepted < 1000 and q.queued_rows == accepted
        exp.down = False
        assert q.flush(10)
        q.shutdown()
        assert sum(b.rows for b in exp.batches) == accepted
