"""The compliance jobs as library functions: retention apply, status and erasure, the audit jobs and the
AI-Act store jobs, each on a session of the test's own databases."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from retention.aiact import Incident, ModelVersion
from retention.aiact_jobs import aggregate_usage, export_aiact, record_incident, register_model
from retention.audit_jobs import AuditOutputs, AuditThresholds, run_audit_job, sign_ledger_head, verify_ledger_job
from retention.jobs import ApplyOptions, EraseOptions, apply_retention, erase_subjects, retention_status
from retention.session import CheckpointOptions, JobInputError, JobProblem, JobSession, SessionOptions, open_session
from storage.backend import StoreConfig
from tests.retention.conftest import NOW, Databases, Keys, count, insert_spans, stop_ttl_merges


def _session(d: Databases, actor: str = "test-suite") -> JobSession:
    return open_session(SessionOptions(stores=(StoreConfig(dsn=d.dsn),), databases=d.tiers, aiact_database=d.aiact,
                                       actor=actor, ner="off"))


@pytest.fixture
def session(dbs: Databases) -> Iterator[JobSession]:
    """A session on the test's tier and AI-Act databases."""
    with _session(dbs) as s:
        yield s


@pytest.fixture
def aiact_session(aiact_only: Databases) -> Iterator[JobSession]:
    """A session on the test's AI-Act database only."""
    with _session(aiact_only) as s:
        yield s


class TestRetentionJobs:
    def test_apply_removes_overdue_rows_signs_the_head_and_writes_gauges(
            self, dbs: Databases, session: JobSession, signing_key: tuple[object, Path, str], tmp_path: Path) -> None:
        """apply removes a backdated span, records the run, checkpoints the ledger and writes the textfile."""
        stop_ttl_merges(dbs.store, dbs.tiers[0], ("spans",))
        insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW - dt.timedelta(days=40)}, {"ts": NOW}])
        prom = tmp_path / "retention.prom"
        options = ApplyOptions(checkpoints=CheckpointOptions(tmp_path / "cp", signing_key[2]), metrics_textfile=prom)
        result = apply_retention(session, options)
        assert result.ok and result.rows_removed == 1
        assert count(dbs.store, f"SELECT count() FROM {dbs.tiers[0]}.spans") == 1
        assert list((tmp_path / "cp").iterdir())
        assert f'sovtel_retention_rows_removed{{table="{dbs.tiers[0]}.spans"}} 1.0' in prom.read_text()

    def test_status_names_every_table_with_its_policy(self, dbs: Databases, session: JobSession) -> None:
        """status lists the tier's and the AI-Act database's tables, the spans under the personal policy."""
        rows = {f"{r.database}.{r.table}": r for r in retention_status(session)}
        assert rows[f"{dbs.tiers[0]}.spans"].policy == "30 days"
        assert any(name.startswith(f"{dbs.aiact}.") for name in rows)

    def test_erase_deletes_the_subject_and_receipts_it(self, dbs: Databases, session: JobSession, keys: Keys) -> None:
        """erase removes the subject's rows only and returns a complete report with its ledger entry."""
        insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW, "user_id": keys.stored("alice")},
                                               {"ts": NOW, "user_id": keys.stored("bob")}])
        [report] = erase_subjects(session, EraseOptions(subjects=("alice",), keyring=keys.path))
        assert report.complete and report.rows_deleted == 1 and report.ledger_seq is not None
        assert count(dbs.store, f"SELECT count() FROM {dbs.tiers[0]}.spans") == 1

    @pytest.mark.parametrize(("options", "message"), [
        (EraseOptions(), "give --subject ID"),
        (EraseOptions(subjects=("alice",)), "give --keyring FILE"),
        (EraseOptions(subjects=("alice",), no_pseudonyms=True), "give --receipt-key"),
    ])
    def test_erase_without_what_it_needs_is_bad_input(self, session: JobSession, options: EraseOptions,
                                                      message: str) -> None:
        """No subject, no key ring for pseudonyms, or no receipt key: JobInputError before anything is deleted."""
        with pytest.raises(JobInputError, match=message):
            erase_subjects(session, options)


class TestAuditJobs:
    def test_run_records_the_result_and_writes_the_report(self, session: JobSession, tmp_path: Path) -> None:
        """An audit of a store with no collector heartbeats fails that check, is in the ledger and in the report."""
        html = tmp_path / "evidence.html"
        result = run_audit_job(session, thresholds=AuditThresholds(lookback_hours=1), outputs=AuditOutputs(html=html))
        assert not result.ok and result.push_error is None
        assert {r.name: r.status for r in result.run.results}["collector_gaps"] == "fail"
        assert session.ledger.head() is not None and session.ledger.head().seq == result.run.ledger_seq  # type: ignore[union-attr]
        assert 'data-check="collector_gaps"' in html.read_text()

    def test_a_failed_push_is_reported_not_raised(self, aiact_session: JobSession) -> None:
        """A Pushgateway that cannot be reached leaves the run intact and says why in push_error."""
        result = run_audit_job(aiact_session, outputs=AuditOutputs(pushgateway="http://127.0.0.1:9"))
        assert result.push_error

    def test_checkpoint_then_verify(self, aiact_session: JobSession, signing_key: tuple[object, Path, str],
                                    tmp_path: Path) -> None:
        """A signed head verifies read-only first; the read is then recorded as the entry after the head."""
        _, public, ref = signing_key
        record_incident(aiact_session, Incident(incident_id="INC-1", model="m", summary="timeouts"))
        signed = sign_ledger_head(aiact_session, CheckpointOptions(tmp_path / "cp", ref))
        assert signed.path.exists() and signed.checkpoint.seq == 1
        checked = verify_ledger_job(aiact_session, CheckpointOptions(tmp_path / "cp", public_key=public))
        assert checked.ok and checked.verification.entries == 1 and checked.verification.checkpoints == 1
        assert checked.access_seq == 2 and checked.access_refused is None

    def test_an_empty_ledger_has_nothing_to_checkpoint(self, aiact_session: JobSession,
                                                       signing_key: tuple[object, Path, str], tmp_path: Path) -> None:
        """Signing the head of an empty ledger is a problem found, not a crash."""
        with pytest.raises(JobProblem, match="nothing to checkpoint"):
            sign_ledger_head(aiact_session, CheckpointOptions(tmp_path / "cp", signing_key[2]))

    def test_checkpoints_need_a_key_to_be_signed_or_verified(self, aiact_session: JobSession, tmp_path: Path) -> None:
        """A checkpoint directory without any key is bad input for both checkpoint and verify."""
        with pytest.raises(JobInputError, match="--signing-key"):
            sign_ledger_head(aiact_session, CheckpointOptions(tmp_path))
        with pytest.raises(JobInputError, match="--public-key"):
            verify_ledger_job(aiact_session, CheckpointOptions(tmp_path))


class TestAiActJobs:
    def test_register_aggregate_and_export(self, session: JobSession, tmp_path: Path) -> None:
        """A documented model, an aggregation of an empty tier and an export whose manifest lists the ledger."""
        entry = register_model(session, ModelVersion(model="m-1", version="1", training_data="public corpus"))
        assert entry.action and entry.seq == 1
        assert aggregate_usage(session).rows == 0
        exported = export_aiact(session, tmp_path / "bundle")
        assert exported.ok and exported.manifest.exists()
        assert "tables/model_versions.jsonl" in json.loads(exported.manifest.read_text())["files"]
