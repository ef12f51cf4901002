"""The hash-chained ledger: appends verify, and modification, deletion, reordering and truncation are detected."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from app.query import run_query
from retention.checkpoints import Checkpoint, canonical_json, read_checkpoints, sign_checkpoint, write_checkpoint
from retention.guard import PersonalDataError
from retention.ledger import (
    GENESIS_HASH,
    Ledger,
    LedgerEntry,
    chain_hash,
    format_timestamp,
    record_query_access,
    verify_entries,
    verify_ledger,
)
from storage.backend import Store
from tests.retention.conftest import count


def _fill(ledger: Ledger, n: int) -> list[LedgerEntry]:
    return [ledger.append("test.step", {"step": i, "note": f"entry {i}"}) for i in range(1, n + 1)]


def _rows(ledger: Ledger) -> list[tuple]:
    columns = "seq, timestamp, action, actor, payload, prev_hash, hash"
    return ledger.store.query_rows(f"SELECT {columns} FROM {ledger.table}")


def _reinsert(ledger: Ledger, rows: list[tuple]) -> None:
    for seq, ts, action, actor, payload, prev_hash, hash_ in rows:
        ledger.store.command(
            f"INSERT INTO {ledger.table} (seq, timestamp, action, actor, payload, prev_hash, hash) VALUES "
            "({s:UInt64}, {t:DateTime64(3)}, {a:String}, {who:String}, {p:String}, {ph:String}, {h:String})",
            {"s": seq, "t": ts, "a": action, "who": actor, "p": payload, "ph": prev_hash, "h": hash_},
        )


def _modify(ledger: Ledger) -> None:
    ledger.store.command(f"ALTER TABLE {ledger.table} UPDATE payload = '{{\"step\":99}}' WHERE seq = 3 "
                         "SETTINGS mutations_sync = 2")


def _delete(ledger: Ledger) -> None:
    ledger.store.command(f"DELETE FROM {ledger.table} WHERE seq = 3")


def _reorder(ledger: Ledger) -> None:
    rows = [r for r in _rows(ledger) if r[0] in (3, 4)]
    ledger.store.command(f"DELETE FROM {ledger.table} WHERE seq IN (3, 4)")
    _reinsert(ledger, [(7 - r[0], *r[1:]) for r in rows])


def _truncate(ledger: Ledger) -> None:
    ledger.store.command(f"DELETE FROM {ledger.table} WHERE seq >= 5")


def _rewrite(ledger: Ledger) -> None:
    """An attacker with write access rewrites entry 2 and re-chains everything after it consistently."""
    rows = sorted(_rows(ledger))
    ledger.store.command(f"DELETE FROM {ledger.table} WHERE seq >= 2")
    prev = rows[0][6]
    forged = []
    for seq, ts, action, actor, payload, _, _ in rows[1:]:
        text = '{"step":0}' if seq == 2 else payload
        digest = chain_hash(prev, seq, ts, action=action, actor=actor, payload=text)
        forged.append((seq, ts, action, actor, text, prev, digest))
        prev = digest
    _reinsert(ledger, forged)


class TestChain:
    def test_hash_covers_previous_hash_and_canonical_entry(self):
        """An entry's hash is SHA-256 over the previous hash followed by its canonical JSON."""
        ts = dt.datetime(2026, 11, 23, 7, 37, 20, 935000, tzinfo=dt.UTC)
        body = ('{"action":"a","actor":"x","payload":"{}","seq":1,"timestamp":"2026-11-23T07:37:20.935Z"}')
        expected = hashlib.sha256((GENESIS_HASH + body).encode()).hexdigest()
        assert chain_hash(GENESIS_HASH, 1, ts, action="a", actor="x", payload="{}") == expected

    def test_appends_link_and_verify(self, ledger):
        """Appended entries form one chain from genesis that verifies without problems."""
        entries = _fill(ledger, 4)
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert entries[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        result = verify_ledger(ledger)
        assert result.ok, result.problems
        assert (result.entries, result.head_seq, result.head_hash) == (4, 4, entries[-1].hash)

    def test_stale_writer_loses_the_race_and_retries(self, ledger, monkeypatch):
        """A writer that read an old head is deduplicated by ClickHouse and appends after the new head."""
        _fill(ledger, 2)
        rival = Ledger(ledger.store, ledger.database, guard=ledger.guard)
        stale = ledger.head()
        calls = {"n": 0}
        real_head = rival.head

        def first_stale():
            calls["n"] += 1
            return stale if calls["n"] == 1 else real_head()

        ledger.append("test.other", {"who": "first"})  # takes seq 3 while the rival still sees seq 2
        monkeypatch.setattr(rival, "head", first_stale)
        entry = rival.append("test.rival", {"who": "second"})
        assert entry.seq == 4
        assert count(ledger.store, f"SELECT count() FROM {ledger.table} WHERE seq = 3") == 1
        assert verify_ledger(ledger).ok

    def test_personal_data_in_a_payload_is_refused(self, ledger):
        """The PII guard refuses an entry whose payload holds an e-mail address, naming the field."""
        with pytest.raises(PersonalDataError, match=r"payload\.requester"):
            ledger.append("test.step", {"requester": "jane.doe@example.com"})
        assert ledger.count() == 0


class TestTamperDetection:
    @pytest.mark.parametrize(
        ("tamper", "kind"),
        [
            (_modify, "modified"),
            (_delete, "missing"),
            (_reorder, "reordered"),
            (_truncate, "truncated"),
            (_rewrite, "rewritten"),
        ],
        ids=["modify", "delete", "reorder", "truncate", "rewrite-chain"],
    )
    def test_tampering_is_detected(self, ledger, signing_key, tmp_path, tamper, kind):
        """Each kind of tampering makes verification fail with a problem of its kind."""
        key, _, _ = signing_key
        _fill(ledger, 6)
        ledger.checkpoint(tmp_path / "cp", key)
        assert verify_ledger(ledger, tmp_path / "cp", key.public_key()).ok
        tamper(ledger)
        result = verify_ledger(ledger, tmp_path / "cp", key.public_key())
        assert not result.ok
        assert kind in {p.kind for p in result.problems}, result.problems

    def test_truncation_without_checkpoint_goes_unnoticed_and_says_so(self, ledger):
        """Without checkpoints a cut-off tail cannot be seen; the verification notes that limit."""
        _fill(ledger, 6)
        _truncate(ledger)
        result = verify_ledger(ledger)
        assert result.ok
        assert any("truncation" in n for n in result.notes)

    def test_forged_checkpoint_is_rejected(self, ledger, signing_key, tmp_path):
        """A checkpoint signed with another key is reported and not trusted."""
        key, _, _ = signing_key
        head = _fill(ledger, 2)[-1]
        forged = sign_checkpoint(ledger.database, head.seq, head.hash, format_timestamp(head.timestamp),
                                 key=Ed25519PrivateKey.generate())
        write_checkpoint(tmp_path, forged)
        result = verify_ledger(ledger, tmp_path, key.public_key())
        assert [p.kind for p in result.problems] == ["checkpoint"]
        assert result.checkpoints == 0

    @pytest.mark.parametrize("anchored", [True, False])
    def test_expired_prefix_needs_a_checkpoint_anchor(self, ledger, signing_key, tmp_path, anchored):
        """Entries gone from the start verify only when a checkpoint anchors the first remaining entry."""
        key, _, _ = signing_key
        entries = _fill(ledger, 4)
        if anchored:
            e = entries[1]
            write_checkpoint(tmp_path, sign_checkpoint(ledger.database, e.seq, e.hash, format_timestamp(e.timestamp),
                                                       key=key))
        ledger.store.command(f"DELETE FROM {ledger.table} WHERE seq <= 2")
        result = verify_ledger(ledger, tmp_path, key.public_key())
        assert result.ok is anchored, result.problems


class TestCheckpoints:
    def test_written_once_and_read_back(self, tmp_path, signing_key):
        """A checkpoint file is never replaced, reads back equal, and its signature verifies."""
        key, _, _ = signing_key
        cp = sign_checkpoint("aiact", 7, "ab" * 32, "2026-11-23T00:00:00.000Z", key=key)
        write_checkpoint(tmp_path, cp)
        write_checkpoint(tmp_path, sign_checkpoint("aiact", 7, "cd" * 32, "2026-11-23T00:00:00.000Z", key=key))
        found, problems = read_checkpoints(tmp_path, "aiact")
        assert (found, problems) == ([cp], [])
        assert found[0].verify(key.public_key())

    def test_altered_checkpoint_fails_its_signature(self, signing_key):
        """Changing any signed field invalidates the signature."""
        key, _, _ = signing_key
        cp = sign_checkpoint("aiact", 7, "ab" * 32, "2026-11-23T00:00:00.000Z", key=key)
        altered = Checkpoint(**{**cp.__dict__, "seq": 8})
        assert not altered.verify(key.public_key())

    def test_verify_entries_of_an_empty_ledger_with_a_checkpoint_is_truncation(self, signing_key):
        """An emptied ledger against an existing checkpoint is reported as truncated."""
        key, _, _ = signing_key
        cp = sign_checkpoint("aiact", 3, "ab" * 32, "2026-11-23T00:00:00.000Z", key=key)
        result = verify_entries([], [cp], key.public_key())
        assert [p.kind for p in result.problems] == ["truncated"]


class TestQueryAccess:
    def test_a_read_is_recorded_before_it_runs_and_tagged(self, ledger, monkeypatch):
        """record_query_access appends an access entry (SQL hash only) and tags the SQL with its id."""
        monkeypatch.setenv("SOVTEL_AIACT_DATABASE", ledger.database)
        sql = "SELECT count() FROM spans WHERE user_id = 'subject-7'"
        tagged = record_query_access(ledger.store, sql)
        head = ledger.head()
        assert head is not None and head.action == "access"
        assert tagged == f"/* sovtel-access:{head.data['access_id']} */ {sql}"
        assert head.data["sql_sha256"] == hashlib.sha256(sql.encode()).hexdigest()
        assert "subject-7" not in head.payload

    def test_a_store_without_ledger_runs_untagged(self, shared_store, monkeypatch):
        """Without an AI-Act ledger in the store the query runs as given (and a warning is logged)."""
        monkeypatch.setenv("SOVTEL_AIACT_DATABASE", "no_such_database")
        assert record_query_access(shared_store, "SELECT 1") == "SELECT 1"

    def test_sovtel_query_records_its_read_in_the_ledger(self, ledger, chdb_dir, monkeypatch):
        """`sovtel query` (run_query) appends an access entry and sends the tagged SQL to the store."""
        sent: list[str] = []
        real = Store.query_arrow

        def spy(self, sql, parameters=None, settings=None):
            sent.append(sql)
            return real(self, sql, parameters, settings)

        # A spy, not a fake: every query still runs on the engine; the user's query is the last one sent.
        monkeypatch.setattr(Store, "query_arrow", spy)
        monkeypatch.setenv("SOVTEL_AIACT_DATABASE", ledger.database)
        columns, rows = run_query("SELECT 1 AS x", store=chdb_dir)
        assert (columns, rows) == (["x"], [(1,)])
        head = ledger.head()
        assert head is not None and head.data["source"] == "sovtel query"
        assert sent[-1] == f"/* sovtel-access:{head.data['access_id']} */ SELECT 1 AS x"


def _chain(payloads: list[dict]) -> list[LedgerEntry]:
    """An in-memory chain of entries (no store), as Ledger.append would write them."""
    out: list[LedgerEntry] = []
    prev = GENESIS_HASH
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i, payload in enumerate(payloads, start=1):
        ts = base + dt.timedelta(seconds=i)
        text = canonical_json(payload)
        digest = chain_hash(prev, i, ts, action="test", actor="prop", payload=text)
        out.append(LedgerEntry(i, ts, "test", "prop", text, prev, digest))
        prev = digest
    return out


_payloads = st.lists(st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=12),
                                     max_size=4), min_size=2, max_size=12)


class TestChainProperties:
    @given(_payloads)
    @settings(max_examples=60, deadline=None)
    def test_any_intact_chain_verifies(self, payloads):
        """Whatever the payloads, a chain built by the append rule verifies."""
        assert verify_entries(_chain(payloads)).ok

    @given(_payloads, st.data())
    @settings(max_examples=60, deadline=None)
    def test_any_single_edit_or_deletion_is_detected(self, payloads, data):
        """Changing one entry's payload, or dropping any entry but the last, always fails verification."""
        entries = _chain(payloads)
        i = data.draw(st.integers(0, len(entries) - 1))
        edited = list(entries)
        edited[i] = LedgerEntry(**{**entries[i].__dict__, "payload": entries[i].payload + " "})
        assert not verify_entries(edited).ok
        j = data.draw(st.integers(0, len(entries) - 2))
        assert not verify_entries(entries[:j] + entries[j + 1:]).ok
