"""Retention enforcement on the real engine: expired rows go now, AI-Act rows stay ten years, TTLs follow policy."""

from __future__ import annotations

import datetime as dt

import pytest

from retention.aiact import AiActStore
from retention.checkpoints import sign_checkpoint, write_checkpoint
from retention.enforce import apply, status
from retention.ledger import Ledger, format_timestamp, verify_ledger
from retention.policies import PersonalPolicy, RetentionPolicies
from retention.tables import discover
from tests.retention.conftest import NOW, count, insert_logs, insert_spans, stop_ttl_merges

DAY = dt.timedelta(days=1)
PERSONAL = ("spans", "logs", "token_usage", "quality_scores")


def _seed_personal(store, db: str) -> None:
    """Spans and logs aged 60, 45, 31 and 2 days; the views fill token_usage and quality_scores."""
    stop_ttl_merges(store, db, PERSONAL)
    ages = {"u-60": 60, "u-45": 45, "u-31": 31, "u-2": 2}
    insert_spans(store, db, [
        {"ts": NOW - age * DAY, "user_id": user, "tenant_id": "t1", "trace_id": f"trace-{user}",
         "duration_ns": 200_000_000, "input_tokens": 10, "output_tokens": 5, "response_model": "m-1",
         "quality_scores": [("hallucination", 0.0)]}
        for user, age in ages.items()
    ])
    insert_logs(store, db, [{"ts": NOW - age * DAY, "user_id": user, "body": "served"} for user, age in ages.items()])


def _seed_aiact(store, aiact: str) -> None:
    """Evaluations ten years old minus a day (must stay) and plus a day (must go)."""
    stop_ttl_merges(store, aiact, ("evaluations",))
    store.command(
        f"INSERT INTO {aiact}.evaluations (timestamp, model, version, suite, metric, value) VALUES "
        "(now64(3) - INTERVAL 10 YEAR + INTERVAL 1 DAY, 'm-1', 'young', 's', 'acc', 0.9), "
        "(now64(3) - INTERVAL 10 YEAR - INTERVAL 1 DAY, 'm-1', 'old', 's', 'acc', 0.8)"
    )


class TestApply:
    def test_backdated_personal_rows_go_and_aiact_rows_stay_ten_years(self, dbs, guard):
        """After apply, personal rows past 30 days are gone from every personal table, an AI-Act row of
        ten years minus a day stays, one of ten years plus a day goes, and the ledger records the counts."""
        store, db = dbs.store, dbs.tiers[0]
        _seed_personal(store, db)
        _seed_aiact(store, dbs.aiact)
        before = {t: count(store, f"SELECT count() FROM {db}.{t}") for t in PERSONAL}
        assert before == {"spans": 4, "logs": 4, "token_usage": 4, "quality_scores": 4}
        ledger = Ledger(store, dbs.aiact, guard=guard)
        report = apply(store, [db], dbs.aiact, RetentionPolicies(), ledger=ledger,
                       aiact=AiActStore(store, dbs.aiact, ledger, guard))
        assert report.ok
        for table in ("spans", "logs"):
            users = {r[0] for r in store.query_rows(f"SELECT user_id FROM {db}.{table}")}
            assert users == {"u-2"}, table
        assert count(store, f"SELECT count() FROM {db}.token_usage") == 1
        assert count(store, f"SELECT count() FROM {db}.quality_scores") == 1
        versions = {r[0] for r in store.query_rows(f"SELECT version FROM {dbs.aiact}.evaluations")}
        assert versions == {"young"}
        removed = {t.table.split(".", 1)[1]: t.rows_removed for t in report.tables if t.rows_removed}
        assert removed == {"spans": 3, "logs": 3, "token_usage": 3, "quality_scores": 3, "evaluations": 1}
        entry = ledger.head()
        assert entry is not None and entry.action == "retention.apply" and entry.seq == report.ledger_seq
        recorded = {t["table"]: t["rows_removed"] for t in entry.data["tables"] if t["rows_removed"]}
        assert recorded == {f"{db}.spans": 3, f"{db}.logs": 3, f"{db}.token_usage": 3, f"{db}.quality_scores": 3,
                            f"{dbs.aiact}.evaluations": 1}

    def test_aggregates_the_days_before_they_expire(self, dbs, guard):
        """Every complete day is aggregated into usage_daily before the personal rows are removed."""
        store, db = dbs.store, dbs.tiers[0]
        _seed_personal(store, db)
        ledger = Ledger(store, dbs.aiact, guard=guard)
        report = apply(store, [db], dbs.aiact, RetentionPolicies(), ledger=ledger,
                       aiact=AiActStore(store, dbs.aiact, ledger, guard))
        assert report.aggregates is not None and len(report.aggregates.days[db]) == 4
        assert count(store, f"SELECT sum(requests) FROM {dbs.aiact}.usage_daily") == 4
        assert count(store, f"SELECT count() FROM {db}.spans") == 1

    @pytest.mark.parametrize(("days", "survivors"), [(30, {"u-2"}), (45, {"u-2", "u-31"}), (90, {"u-2", "u-31",
                                                                                                  "u-45", "u-60"})])
    def test_table_ttl_follows_the_policy(self, dbs, guard, days, survivors):
        """The spans TTL becomes the policy's days, and only rows younger than the policy remain."""
        store, db = dbs.store, dbs.tiers[0]
        _seed_personal(store, db)
        policies = RetentionPolicies(personal=PersonalPolicy(days=days))
        report = apply(store, [db], dbs.aiact, policies, ledger=Ledger(store, dbs.aiact, guard=guard))
        spans = next(t for t in discover(store, db) if t.name == "spans")
        assert (spans.ttl.amount, spans.ttl.unit) == (days, "DAY")
        assert {r[0] for r in store.query_rows(f"SELECT user_id FROM {db}.spans")} == survivors
        changed = next(t for t in report.tables if t.table == f"{db}.spans").ttl_changed
        assert changed is (days != 30)

    def test_status_shows_overdue_rows_until_apply(self, dbs, guard):
        """status reports the oldest row and the overdue count per table, and 'ok' once applied."""
        store, db = dbs.store, dbs.tiers[0]
        _seed_personal(store, db)
        before = {s.table: s for s in status(store, [db], dbs.aiact, RetentionPolicies())}
        assert before["spans"].status == "overdue" and before["spans"].expired_rows == 3
        assert 59.9 < before["spans"].oldest_age_days < 60.1
        assert before["gpu_metrics"].status == "ok" and before["gpu_metrics"].rows == 0
        apply(store, [db], dbs.aiact, RetentionPolicies(), ledger=Ledger(store, dbs.aiact, guard=guard))
        after = {s.table: s for s in status(store, [db], dbs.aiact, RetentionPolicies())}
        assert {s.status for s in after.values()} == {"ok"}


class TestLedgerExpiry:
    def _old_ledger(self, dbs, guard) -> Ledger:
        old = NOW - dt.timedelta(days=3653 + 40)
        stop_ttl_merges(dbs.store, dbs.aiact, ("ledger",))
        aged = Ledger(dbs.store, dbs.aiact, guard=guard, clock=lambda: old)
        for i in range(3):
            aged.append("test.old", {"i": i})
        ledger = Ledger(dbs.store, dbs.aiact, guard=guard)
        ledger.append("test.new", {"i": 3})
        return ledger

    def test_expired_entries_without_anchor_are_kept(self, dbs, guard):
        """Without a signing key the expired ledger entries stay (and are reported), so the chain verifies."""
        ledger = self._old_ledger(dbs, guard)
        report = apply(dbs.store, [], dbs.aiact, RetentionPolicies(), ledger=ledger)
        result = next(t for t in report.tables if t.table.endswith(".ledger"))
        assert (result.expired_rows, result.rows_remaining_expired) == (3, 3)
        assert "no signing key" in result.note
        assert not report.ok
        assert verify_ledger(ledger).ok

    def test_expired_entries_go_after_a_signed_anchor(self, dbs, guard, signing_key, tmp_path):
        """With an anchor checkpoint the expired entries are removed and the rest still verifies."""
        key, _, _ = signing_key
        ledger = self._old_ledger(dbs, guard)

        def anchor(entry):
            write_checkpoint(tmp_path, sign_checkpoint(dbs.aiact, entry.seq, entry.hash,
                                                       format_timestamp(entry.timestamp), key=key))
            return True

        report = apply(dbs.store, [], dbs.aiact, RetentionPolicies(), ledger=ledger, anchor=anchor)
        assert report.ok
        assert [e.seq for e in ledger.entries()] == [4, 5]
        result = verify_ledger(ledger, tmp_path, key.public_key())
        assert result.ok, result.problems
        assert any("anchored" in n for n in result.notes)
