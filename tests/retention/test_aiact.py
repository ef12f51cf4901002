"""The AI-Act store: the PII guard refuses personal data, aggregates are right, integrity and export hold."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from retention.aiact import AiActStore, Evaluation, Incident, ModelVersion
from retention.guard import PersonalDataError
from retention.ledger import Ledger, verify_ledger
from tests.retention.conftest import NOW, count, insert_spans

DOCUMENTED = ModelVersion(
    model="llama-3.1-70b-instruct",
    version="2026-11-01",
    provider="vllm",
    hyperparameters={"temperature": 0.7, "max_tokens": 4096},
    training_data="Meta Llama 3.1 pre-training corpus (public web, licensed data); no customer data.",
    deployment_config={"gpus": 8, "quantisation": "fp8", "region": "eu-central"},
    documentation="Model card v3: intended use, limitations, evaluation summary.",
)


@pytest.fixture
def aiact(aiact_only, guard) -> AiActStore:
    """The AI-Act store of the test's deployment."""
    return AiActStore(aiact_only.store, aiact_only.aiact, Ledger(aiact_only.store, aiact_only.aiact, guard=guard),
                      guard)


class TestGuard:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"training_data": "Support tickets forwarded by jane.doe@example.com"}, "training_data"),
            ({"hyperparameters": {"owner": "Anna Schmidt"}}, "hyperparameters.owner"),
            ({"deployment_config": {"billing_iban": "DE89370400440532013000"}}, "deployment_config.billing_iban"),
            ({"recorded_by": "ops at 192.168.10.7"}, "recorded_by"),
        ],
    )
    def test_personal_data_is_refused_naming_the_field(self, aiact, change, field):
        """A model version carrying personal data is refused before anything is written, naming the field."""
        with pytest.raises(PersonalDataError, match=field.replace(".", r"\.")) as info:
            aiact.register_model(DOCUMENTED.model_copy(update=change))
        assert "example.com" not in str(info.value) and "DE8937" not in str(info.value)
        assert count(aiact.store, f"SELECT count() FROM {aiact.database}.model_versions") == 0
        assert aiact.ledger.count() == 0

    def test_documentation_is_stored_with_its_hash_and_recorded(self, aiact):
        """A clean model version is stored (documentation as SHA-256 only) and its ledger entry names it."""
        entry = aiact.register_model(DOCUMENTED)
        [(model, hp, doc_hash)] = aiact.store.query_rows(
            f"SELECT model, hyperparameters, documentation_hash FROM {aiact.database}.model_versions")
        assert model == DOCUMENTED.model
        assert json.loads(hp) == DOCUMENTED.hyperparameters
        assert doc_hash == hashlib.sha256(DOCUMENTED.documentation.encode()).hexdigest()
        assert entry.action == "aiact.register_model" and entry.data["documentation_hash"] == doc_hash


class TestUsageAggregates:
    def test_daily_aggregate_per_model_version(self, dbs, guard):
        """Requests, errors, tokens, mean and p95 latency and the hallucination rate come out per day and
        model version, from the spans before they expire, and a second run adds nothing."""
        day = (NOW - dt.timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)
        rows = [
            {"ts": day, "response_model": "m-1", "duration_ns": ms * 1_000_000, "input_tokens": 10,
             "output_tokens": 20, "status_code": status, "quality_scores": scores}
            for ms, status, scores in (
                (100, "OK", [("hallucination", 1.0)]), (200, "OK", [("hallucination", 0.0)]),
                (300, "ERROR", []), (400, "OK", [("hallucination", 0.0)]),
            )
        ]
        rows.append({"ts": NOW, "response_model": "m-1", "duration_ns": 1})  # today: not complete, not aggregated
        insert_spans(dbs.store, dbs.tiers[0], rows)
        aiact = AiActStore(dbs.store, dbs.aiact, Ledger(dbs.store, dbs.aiact, guard=guard), guard)
        report = aiact.aggregate_usage(dbs.store, dbs.tiers[0])
        assert report.rows == 1 and report.days == {dbs.tiers[0]: [day.date().isoformat()]}
        [row] = dbs.store.query_rows(
            f"SELECT day, model, requests, errors, input_tokens, output_tokens, mean_latency_ms, p95_latency_ms, "
            f"hallucination_rate, source_database FROM {dbs.aiact}.usage_daily")
        assert row[:6] == (day.date(), "m-1", 4, 1, 40, 80)
        assert row[6] == pytest.approx(250.0) and row[7] == pytest.approx(400.0)
        assert row[8] == pytest.approx(1 / 3) and row[9] == dbs.tiers[0]
        assert aiact.aggregate_usage(dbs.store, dbs.tiers[0]).rows == 0


class TestIntegrity:
    def _records(self, aiact: AiActStore) -> None:
        aiact.register_model(DOCUMENTED)
        aiact.record_evaluation(Evaluation(model="m", version="1", suite="s", metric="acc", value=0.91,
                                           threshold=0.9, passed=True))
        aiact.record_incident(Incident(incident_id="INC-1", model="m", summary="latency spike", severity="high"))

    def test_untouched_records_match_the_ledger(self, aiact):
        """Every record row matches a digest the ledger holds."""
        self._records(aiact)
        report = aiact.check_integrity(list(aiact.ledger.entries()))
        assert report.ok, (report.unrecorded, report.vanished)
        assert report.rows == {"model_versions": 1, "evaluations": 1, "usage_daily": 0, "incidents": 1}

    @pytest.mark.parametrize(
        ("sql", "unrecorded", "vanished"),
        [
            ("INSERT INTO {db}.incidents (timestamp, incident_id, model, summary) VALUES (now64(3), 'X', 'm', 's')",
             1, 0),
            ("DELETE FROM {db}.evaluations WHERE 1", 0, 1),
            ("ALTER TABLE {db}.model_versions UPDATE training_data = 'edited' WHERE 1 SETTINGS mutations_sync = 2",
             1, 1),
        ],
        ids=["inserted-outside", "deleted", "modified"],
    )
    def test_changes_outside_sovtel_are_found(self, aiact, sql, unrecorded, vanished):
        """Rows inserted, deleted or modified behind sovtel's back show up as unrecorded or vanished."""
        self._records(aiact)
        aiact.store.command(sql.format(db=aiact.database))
        report = aiact.check_integrity(list(aiact.ledger.entries()))
        assert (sum(report.unrecorded.values()), sum(report.vanished.values())) == (unrecorded, vanished)


class TestExport:
    def test_bundle_has_every_table_ledger_checkpoints_and_hashes(self, aiact, signing_key, tmp_path):
        """The export holds JSONL per table, the ledger, the checkpoints and a signed manifest whose
        SHA-256 values match the files."""
        key, public, _ = signing_key
        TestIntegrity()._records(aiact)
        aiact.ledger.checkpoint(tmp_path / "cp", key)
        verification = verify_ledger(aiact.ledger, tmp_path / "cp", key.public_key())
        out = tmp_path / "bundle"
        manifest_path = aiact.export(out, verification, checkpoint_dir=tmp_path / "cp", signing_key=key,
                                     public_key_file=public)
        manifest = json.loads(manifest_path.read_text())
        assert manifest["ledger"]["head_seq"] == 3 and manifest["verification"]["ok"] is True
        expected = {"tables/model_versions.jsonl", "tables/evaluations.jsonl", "tables/usage_daily.jsonl",
                    "tables/incidents.jsonl", "tables/audit_results.jsonl", "ledger.jsonl", "ledger-signing.pub.pem"}
        assert expected <= set(manifest["files"])
        assert any(name.startswith("checkpoints/") for name in manifest["files"])
        for name, meta in manifest["files"].items():
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == meta["sha256"], name
        ledger_lines = (out / "ledger.jsonl").read_text().splitlines()
        assert [json.loads(line)["seq"] for line in ledger_lines] == [1, 2, 3]
        key.public_key().verify(base64.b64decode((out / "manifest.sig").read_text()), manifest_path.read_bytes())
