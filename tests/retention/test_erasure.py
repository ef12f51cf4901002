"""GDPR erasure: a subject's rows go from every tier and table, others stay, and a receipt lands in the ledger."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from processors import pepper, pseudonymise
from retention.erasure import (
    ErasureError,
    Tier,
    default_receipt_key,
    erase,
    read_subject_file,
    receipt_hmac,
    subject_keys,
)
from retention.ledger import Ledger
from sovtel.component import ComponentContext
from sovtel.config import resolve_secret
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from tests.retention.conftest import NOW, count, insert_logs, insert_spans, ts_array

HOUR = dt.timedelta(hours=1)


def _seed(store, dbs, keys) -> None:
    """Tier A: spans (with quality scores, so the view fills quality_scores) and logs of the subject under
    key pair n1:p1 and of another user; tier B: spans under the rotated key n2:p1 and a collector-side
    pseudonym in an attribute."""
    a, b = dbs.tiers
    insert_spans(store, a, [
        {"ts": NOW - HOUR, "user_id": keys.stored("alice"), "trace_id": "tr-a1", "tenant_id": "t1",
         "quality_scores": [("hallucination", 1.0)]},
        {"ts": NOW - HOUR, "user_id": "", "trace_id": "tr-a1", "tenant_id": "t1", "parent_span_id": "child"},
        {"ts": NOW - HOUR, "user_id": keys.stored("bob"), "trace_id": "tr-b1", "tenant_id": "t1",
         "quality_scores": [("hallucination", 0.0)]},
    ])
    insert_logs(store, a, [
        {"ts": NOW - HOUR, "trace_id": "tr-a1", "body": "request served"},
        {"ts": NOW - HOUR, "user_id": keys.stored("bob"), "trace_id": "tr-b1", "body": "request served"},
    ])
    insert_spans(store, b, [
        {"ts": NOW - HOUR, "session_id": keys.stored("alice", node="n2"), "trace_id": "tr-a2"},
        {"ts": NOW - HOUR, "trace_id": "tr-a3", "span_attributes": [("enduser.id", keys.collector("alice"))]},
        {"ts": NOW - HOUR, "user_id": keys.stored("bob", node="n2"), "trace_id": "tr-b2"},
    ])


def _rows(store, db: str, table: str) -> int:
    return count(store, f"SELECT count() FROM {db}.{table}")


class TestErase:
    def test_subject_gone_from_two_tiers_and_three_tables_others_untouched(self, two_tiers, keys, guard):
        """Alice's rows (spans, logs and quality scores, in both tiers, under rotated keys) are deleted,
        Bob's stay, and the receipt in the ledger names neither her id nor any of her pseudonyms."""
        store = two_tiers.store
        a, b = two_tiers.tiers
        _seed(store, two_tiers, keys)
        assert (_rows(store, a, "spans"), _rows(store, a, "logs"), _rows(store, a, "quality_scores")) == (3, 2, 2)
        ledger = Ledger(store, two_tiers.aiact, guard=guard)
        key, key_id = default_receipt_key(keys.ring)
        [report] = erase(["alice"], [Tier(store, a), Tier(store, b)], ledger, ring=keys.ring, receipt_key=key,
                         receipt_key_id=key_id)
        assert report.complete and report.rows_remaining == 0
        assert {r[0] for r in store.query_rows(f"SELECT user_id FROM {a}.spans")} == {keys.stored("bob")}
        assert {r[0] for r in store.query_rows(f"SELECT trace_id FROM {a}.logs")} == {"tr-b1"}
        assert {r[0] for r in store.query_rows(f"SELECT trace_id FROM {a}.quality_scores")} == {"tr-b1"}
        assert {r[0] for r in store.query_rows(f"SELECT trace_id FROM {b}.spans")} == {"tr-b2"}
        deleted = {(t.database, t.table): t.deleted for t in report.tables}
        assert deleted == {(a, "spans"): 2, (a, "logs"): 1, (a, "quality_scores"): 1, (b, "spans"): 2}
        entry = ledger.head()
        assert entry is not None and entry.action == "erasure" and entry.seq == report.ledger_seq
        assert entry.data["subject_hmac"] == receipt_hmac("alice", key)
        assert entry.data["rows_deleted"] == 6 and entry.data["complete"] is True
        for value in subject_keys("alice", keys.ring).values:
            assert value not in entry.payload
        view = store.query_rows(f"SELECT subject_hmac, rows_deleted, complete FROM {two_tiers.aiact}.erasure_receipts")
        assert view == [(receipt_hmac("alice", key), 6, True)]

    def test_rows_left_behind_make_the_erasure_incomplete(self, two_tiers, keys, guard, monkeypatch):
        """If a delete silently leaves rows, the receipt says incomplete and counts what remains."""
        store = two_tiers.store
        _seed(store, two_tiers, keys)
        real = store.command

        def skip_logs_deletes(sql, parameters=None):
            if "ALTER TABLE" in sql and ".`logs`" in sql:
                return None
            return real(sql, parameters)

        monkeypatch.setattr(store, "command", skip_logs_deletes)
        ledger = Ledger(store, two_tiers.aiact, guard=guard)
        [report] = erase(["alice"], [Tier(store, two_tiers.tiers[0])], ledger, ring=keys.ring,
                         receipt_key=b"k" * 32, receipt_key_id="test")
        assert not report.complete
        assert report.rows_remaining == 1
        assert ledger.head().data["complete"] is False

    def test_pseudonyms_cover_every_node_key_and_pepper(self, keys):
        """The subject is looked up in clear, under each node key, and under each node and pepper pair."""
        found = subject_keys("alice", keys.ring)
        assert set(found.key_ids) == {"n1", "n2", "n1:p1", "n2:p1"}
        assert set(found.values) == {"alice", keys.collector("alice"), keys.collector("alice", "n2"),
                                     keys.stored("alice"), keys.stored("alice", "n2")}

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("alice\nbob\n", ["alice", "bob"]), ("# header\n\n  carol  \n", ["carol"]), ("", [])],
    )
    def test_subject_file_lines(self, tmp_path, text, expected):
        """Subject files hold one id per line; blank and comment lines are skipped."""
        path = tmp_path / "subjects.txt"
        path.write_text(text)
        assert read_subject_file(path) == expected

    @pytest.mark.parametrize(
        ("subjects", "key", "message"),
        [([], b"k" * 32, "no subject"), (["alice"], b"short", "at least 16 bytes"), ([""], b"k" * 32, "empty")],
    )
    def test_bad_requests_are_refused(self, subjects, key, message, guard, shared_store):
        """No subject, an empty subject or a short receipt key raise ErasureError before any delete."""
        with pytest.raises(ErasureError, match=message):
            erase(subjects, [], Ledger(shared_store, "unused", guard=guard), ring=None, receipt_key=key,
                  receipt_key_id="x")


class TestWithThePrivacyProcessors:
    def test_rows_written_by_pseudonymise_and_pepper_are_found(self, dbs, keys, guard):
        """Rows pseudonymised by the collector's processor and peppered by the store's are erased by id."""
        ctx = ComponentContext("privacy", Telemetry(CollectorRegistry()).component("privacy"),
                               resolve_secret=resolve_secret)
        batch = Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {
            "timestamp": ts_array([NOW - HOUR] * 3), "operation": ["chat"] * 3,
            "user_id": ["alice", "bob", "carol"], "session_id": ["s-alice", "s-bob", "s-carol"],
            "trace_id": ["t1", "t2", "t3"],
        }))
        batch = pseudonymise.Pseudonymise(ctx, pseudonymise.Config(key_ring=keys.path))(batch)
        batch = pepper.Pepper(ctx, pepper.Config(key_ring=keys.path))(batch)
        assert "alice" not in batch.table.column("user_id").to_pylist()
        dbs.store.insert_arrow(f"{dbs.tiers[0]}.spans", batch.table)
        key, key_id = default_receipt_key(keys.ring)
        [report] = erase(["alice"], [Tier(dbs.store, dbs.tiers[0])], Ledger(dbs.store, dbs.aiact, guard=guard),
                         ring=keys.ring, receipt_key=key, receipt_key_id=key_id)
        assert report.complete and report.rows_deleted == 1
        assert {r[0] for r in dbs.store.query_rows(f"SELECT trace_id FROM {dbs.tiers[0]}.spans")} == {"t2", "t3"}
