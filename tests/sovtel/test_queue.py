"""The durable queue: fsynced group commits, claimed groups replayed identically, byte budget, disk watermark,
reserve on a full disk, resume and exclusivity."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sovtel.component import Backpressure, ExportResult
from sovtel.queue import (
    DEDUP_TOKEN,
    DurableBuffer,
    QueuedExporter,
    QueueInUseError,
    QueueRefusal,
    QueueSettings,
    dedup_token,
    queue_file,
    queued_rows,
    rows_token,
)
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from tests.disks import fill_disk, small_filesystem
from tests.waiting import wait_until


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
        buf.put(spans(5, start=30))
        buf.close()
        with sqlite3.connect(path) as db:
            # That release claimed by setting group_id on the rows and had no claims table.
            db.execute("UPDATE batches SET group_id = 1 WHERE id = 1")
            db.execute("DELETE FROM claims")
        again = DurableBuffer(path)
        replay = again.take(100)
        assert replay is not None and replay.dedup_token is None and replay.batch.rows == 30
        assert dedup_token(replay.batch) == rows_token(spans(30))
        again.ack(replay)
        rest = again.take(100)
        assert rest is not None and rest.batch.rows == 5 and rest.dedup_token is not None
        again.ack(rest)
        assert again.pending_rows == 0
        again.close()

    def test_group_claimed_by_row_with_a_token_is_replayed_with_it(self, tmp_path: Path) -> None:
        """A group an older release claimed row by row (group_id) comes back first with the token it was sent with."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        for k in range(3):
            buf.put(spans(10, start=k * 10))
        buf.close()
        with sqlite3.connect(path) as db:
            db.execute("UPDATE batches SET group_id = 1 WHERE id IN (1, 2)")
            db.execute("INSERT INTO claims (group_id, token) VALUES (1, 'sovtel-traces-older')")
        again = DurableBuffer(path)
        replay = again.take(100)
        assert replay is not None and replay.dedup_token == "sovtel-traces-older" and replay.batch.rows == 20
        again.ack(replay)
        rest = again.take(100)
        assert rest is not None and rest.batch.table.column("trace_id").to_pylist() == [
            f"{i:032x}" for i in range(20, 30)]
        again.ack(rest)
        again.close()
        assert queued_rows(path) == 0


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


def wide_spans(n: int, start: int = 0) -> Batch:
    """Spans with a long attribute, so a few batches take megabytes."""
    ids = [f"{i:032x}" for i in range(start, start + n)]
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {
        "trace_id": ids, "span_id": ids, "span_name": [f"op-{i}-" + "x" * 400 for i in range(start, start + n)]}))


class TestDiskSpace:
    def test_watermark_refuses_before_the_disk_fills(self, tmp_path: Path) -> None:
        """Below the watermark fits is False and put refuses retryably, storing nothing; room brings puts back."""
        free = [64 << 20]
        buf = DurableBuffer(tmp_path / "q.sqlite", min_free_bytes=32 << 20, reserve_bytes=0,
                            free_space=lambda _: free[0])
        batch = spans(100)
        assert buf.fits(batch)
        buf.put(batch)
        free[0] = (32 << 20) + 1024  # a batch would take the disk below the watermark
        assert not buf.fits(batch) and not buf.fits(None, 1)
        with pytest.raises(QueueRefusal) as refused:
            buf.put(spans(100, start=100))
        assert isinstance(refused.value, Backpressure) and refused.value.reason == "queue_disk_watermark"
        assert buf.pending_rows == 100
        free[0] = 64 << 20
        assert buf.fits(batch)
        buf.put(spans(100, start=100))
        buf.close()
        assert queued_rows(tmp_path / "q.sqlite") == 200

    def test_exporter_counts_a_watermark_refusal(self, tmp_path: Path) -> None:
        """enqueue turns a refused put into Backpressure and counts it as refused with its reason."""
        free = [1 << 20]
        telemetry = Telemetry()
        buf = DurableBuffer(tmp_path / "q.sqlite", min_free_bytes=4 << 20, reserve_bytes=0,
                            free_space=lambda _: free[0])
        q = QueuedExporter("ch", Recording(), telemetry.component("ch"), buffer=buf)  # type: ignore[arg-type]
        with pytest.raises(Backpressure):
            q.enqueue(spans(10), checked=True)  # as a pipeline does after its own check
        assert telemetry.total("sovtel_refused_requests_total", component="ch", reason="queue_disk_watermark") == 1
        q.shutdown()

    def test_free_pages_in_the_file_count_as_room(self, tmp_path: Path) -> None:
        """Pages freed by delivered batches are reused by later puts, so they count towards the watermark."""
        free = [0]
        buf = DurableBuffer(tmp_path / "q.sqlite", min_free_bytes=0, reserve_bytes=0, free_space=lambda _: free[0])
        assert not buf.fits(wide_spans(10))
        free[0] = 64 << 20
        for k in range(16):  # about 5 MB, more than the room the write-ahead log keeps
            buf.put(wide_spans(400, start=k * 400))
        while (taken := buf.take(2000)) is not None:
            buf.ack(taken)
        free[0] = 0
        assert buf.available_bytes() > 4 << 20 and buf.fits(wide_spans(10))
        buf.close()

    def test_sqlite_full_on_put_is_a_retryable_refusal(self, tmp_path: Path) -> None:
        """SQLITE_FULL from the engine on put becomes a QueueRefusal; what was acknowledged before stays."""
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path, min_free_bytes=0, reserve_bytes=0)
        buf.put(spans(10))
        # The engine's own page limit gives a real SQLITE_FULL without filling this machine's disk.
        pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
        buf._db.execute(f"PRAGMA max_page_count={pages + 2}")
        with pytest.raises(QueueRefusal) as refused:
            buf.put(wide_spans(500))
        assert refused.value.reason == "queue_disk_full"
        assert buf.pending_rows == 10
        buf.close()
        again = DurableBuffer(path, min_free_bytes=0, reserve_bytes=0)
        taken = again.take(100)
        assert taken is not None and taken.batch.rows == 10 and again.pending_rows == 10
        again.ack(taken)
        again.close()

    def test_enospc_on_put_is_a_retryable_refusal(self, tmp_path: Path) -> None:
        """A full filesystem the probe did not see (another writer was faster) refuses puts retryably; nothing lost."""
        with small_filesystem(tmp_path / "small", "4m") as disk:
            path = disk / "q.sqlite"
            buf = DurableBuffer(path, min_free_bytes=0, reserve_bytes=0, free_space=lambda _: 1 << 30)
            buf.put(spans(10))
            fill_disk(disk / "ballast")
            refusals = []
            for k in range(5):  # the log may still have a page or two of room: keep writing until it has none
                try:
                    buf.put(wide_spans(500, start=100 + k * 500))
                except QueueRefusal as exc:
                    refusals.append(exc.reason)
            assert refusals and set(refusals) == {"queue_disk_full"}
            stored = buf.pending_rows
            (disk / "ballast").unlink()
            buf.put(spans(10, start=10))
            buf.close()
            assert queued_rows(path) == stored + 10

    def test_reserve_lets_a_delete_through_on_a_full_disk(self, tmp_path: Path) -> None:
        """On a full filesystem a put refuses retryably, the reserve is released so a delete works, and comes back."""
        with small_filesystem(tmp_path / "small", "8m") as disk:
            path = disk / "q.sqlite"
            buf = DurableBuffer(path, min_free_bytes=0, reserve_bytes=1 << 20)
            assert buf.reserve_held
            for k in range(4):
                buf.put(wide_spans(500, start=k * 500))
            buf.close()  # a fresh write-ahead log: the delete below needs new room, not reused log pages
            buf = DurableBuffer(path, min_free_bytes=0, reserve_bytes=1 << 20)
            first = buf.take(1000)
            assert first is not None and first.batch.rows == 1000
            fill_disk(disk / "ballast")
            with pytest.raises(Backpressure):
                buf.put(wide_spans(500, start=5000))
            buf.ack(first)  # needs room in the log: the reserve gives it
            assert not buf.reserve_held and buf.pending_rows == 1000
            second = buf.take(1000)
            assert second is not None
            buf.ack(second)
            # The disk is still full: the pages the deletes freed went back to the filesystem for the reserve.
            assert buf.reserve_held and buf.pending_rows == 0
            (disk / "ballast").unlink()
            buf.put(wide_spans(10))
            buf.close()
            assert queued_rows(path) == 10


class TestGroupCommit:
    def test_concurrent_puts_share_commits(self, tmp_path: Path) -> None:
        """Puts arriving while a commit is being written share the next one: fewer commits than puts, none lost."""
        n = 8
        path = tmp_path / "q.sqlite"
        buf = DurableBuffer(path)
        first_commit = threading.Event()
        commit_puts = buf._commit_puts

        def slow_first(group: list[Any]) -> None:
            # Hold the first commit until every other put waits, so the second commit must carry them all.
            if not first_commit.is_set():
                first_commit.set()
                assert wait_until(lambda: len(group) + len(buf._waiting) == n, timeout=30)
            commit_puts(group)

        buf._commit_puts = slow_first  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def put(k: int) -> None:
            try:
                buf.put(spans(10, start=k * 10))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=put, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and buf.commits == 2 and buf.pending_rows == n * 10
        buf.close()
        again = DurableBuffer(path)
        taken = again.take(10_000)
        assert taken is not None
        assert sorted(taken.batch.table.column("trace_id").to_pylist()) == [f"{i:032x}" for i in range(n * 10)]
        again.ack(taken)
        again.close()

    def test_acknowledged_puts_survive_sigkill(self, tmp_path: Path) -> None:
        """Every put that returned in a process SIGKILLed mid-load is on disk after reopening, with fewer commits."""
        path = tmp_path / "q.sqlite"
        script = textwrap.dedent(f"""
            import os, signal, sys, threading
            from pathlib import Path
            from sovtel.queue import DurableBuffer
            from sovtel.records import Batch, Signal, table_from_columns
            buf = DurableBuffer(Path({str(path)!r}))
            lock = threading.Lock()
            def run(w):
                for k in range(1000):
                    n = w * 1000 + k
                    ids = [f"{{n:032x}}"]
                    table = table_from_columns(Signal.TRACES, {{"trace_id": ids, "span_id": ids}})
                    buf.put(Batch(Signal.TRACES, table))
                    with lock:
                        print("acked", n, buf.commits, flush=True)
            for w in range(8):
                threading.Thread(target=run, args=(w,), daemon=True).start()
            threading.Event().wait(60)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[2])
        assert proc.stdout is not None
        acked: list[int] = []
        commits = 0
        for line in proc.stdout:
            _, n, commits_now = line.split()
            acked.append(int(n))
            commits = int(commits_now)
            if len(acked) == 2000:
                proc.kill()  # SIGKILL while the other threads are mid-put
                break
        proc.wait(30)
        assert len(acked) == 2000 and commits < len(acked)
        stored = DurableBuffer(path)
        ids: set[str] = set()
        while (taken := stored.take(100_000)) is not None:
            ids.update(taken.batch.table.column("trace_id").to_pylist())
            stored.ack(taken)
        stored.close()
        assert {f"{n:032x}" for n in acked} <= ids
