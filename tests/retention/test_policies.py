"""Retention policies and the jobs configuration: windows, overrides, stream assignment, strict parsing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from retention.config import JobsConfigError, load_jobs_config, parse_jobs_config
from retention.policies import AiActPolicy, PersonalPolicy, RetentionPolicies
from retention.tables import Interval, TableInfo, parse_ttl
from storage.clickhouse import RetentionConfig


class TestPersonalPolicy:
    @pytest.mark.parametrize(
        ("days", "reason", "ok"),
        [
            (30, None, True),
            (90, None, True),
            (60, None, True),
            (29, None, False),
            (91, None, False),
            (7, "   ", False),
            (7, "incident forensics hold, ticket SEC-12", True),
            (180, "regulator request", True),
        ],
    )
    def test_window_is_30_to_90_days_unless_overridden_with_a_reason(self, days, reason, ok):
        """Days inside 30-90 are accepted; outside only with a non-blank override reason."""
        if ok:
            assert PersonalPolicy(days=days, override_reason=reason).days == days
        else:
            with pytest.raises(ValidationError, match="between 30 and 90"):
                PersonalPolicy(days=days, override_reason=reason)

    @pytest.mark.parametrize(("years", "reason", "ok"), [(10, None, True), (12, None, True), (9, None, False),
                                                         (1, "deployer only: Art. 26(6) six months", True)])
    def test_aiact_store_keeps_ten_years_unless_overridden(self, years, reason, ok):
        """The AI-Act store keeps at least ten years; shorter only with a stated reason."""
        if ok:
            assert AiActPolicy(years=years, override_reason=reason).years == years
        else:
            with pytest.raises(ValidationError, match="at least 10 years"):
                AiActPolicy(years=years, override_reason=reason)

    def test_defaults_are_30_days_13_months_10_years(self):
        """The default policies are 30 days, 395 days and 10 years."""
        p = RetentionPolicies()
        assert (p.interval("personal"), p.interval("operational"), p.interval("aiact")) == (
            Interval(30, "DAY"), Interval(395, "DAY"), Interval(10, "YEAR"))

    def test_policies_follow_an_exporter_retention_section(self):
        """The exporter's retention section gives the same policies."""
        p = RetentionPolicies.from_exporter(RetentionConfig(personal_days=60, operational_days=400))
        assert (p.personal.days, p.operational.days, p.aiact.years) == (60, 400, 10)

    def test_a_table_cannot_be_personal_and_operational(self):
        """Listing one table in both streams is a configuration error."""
        with pytest.raises(ValidationError, match="both personal and operational: spans"):
            RetentionPolicies(operational_tables=("spans",))


def _table(name: str, database: str = "sovtel", columns: tuple[str, ...] = ()) -> TableInfo:
    return TableInfo(database, name, "MergeTree", "toDate(timestamp)", dict.fromkeys(columns, "String"))


class TestStreams:
    @pytest.mark.parametrize(
        ("table", "stream"),
        [
            (_table("spans"), "personal"),
            (_table("token_usage"), "personal"),
            (_table("gpu_metrics"), "operational"),
            (_table("metrics", columns=("tenant_id",)), "operational"),
            (_table("ledger", database="aiact"), "aiact"),
            (_table("new_personal_table", columns=("user_id",)), "personal"),
            (_table("new_counter_table", columns=("value",)), "operational"),
        ],
    )
    def test_tables_are_assigned_to_streams(self, table, stream):
        """Listed tables take their stream; unlisted ones with a subject column are personal (fail closed)."""
        assert RetentionPolicies().stream_of(table, "aiact") == stream


class TestTtlParsing:
    @pytest.mark.parametrize(
        ("engine_full", "expected"),
        [
            ("MergeTree PARTITION BY toDate(timestamp) ORDER BY x TTL toDateTime(timestamp) + toIntervalDay(30) "
             "SETTINGS ttl_only_drop_parts = 1", ("toDateTime(timestamp)", Interval(30, "DAY"))),
            ("MergeTree ORDER BY seq TTL toDateTime(timestamp) + toIntervalYear(10) SETTINGS index_granularity = 8192",
             ("toDateTime(timestamp)", Interval(10, "YEAR"))),
            ("SummingMergeTree ORDER BY (a, minute) TTL minute + toIntervalDay(90) SETTINGS x = 1",
             ("minute", Interval(90, "DAY"))),
            ("MergeTree ORDER BY x SETTINGS index_granularity = 8192", None),
        ],
    )
    def test_engine_ttl_is_read(self, engine_full, expected):
        """The TTL's time expression and interval are read from system.tables.engine_full."""
        assert parse_ttl(engine_full) == expected


class TestJobsConfig:
    def test_full_file_is_read(self, tmp_path):
        """A complete jobs file validates into tiers, policies, ledger and audit settings."""
        path = tmp_path / "jobs.yaml"
        path.write_text(
            "tiers:\n  - path: /srv/sovtel/store\n    databases: [local, sovereign]\n"
            "aiact: {database: aiact}\n"
            "retention:\n  personal: {days: 45}\n"
            "ledger: {checkpoint_dir: /srv/checkpoints, signing_key: 'env:SOVTEL_LEDGER_KEY'}\n"
            "audit:\n  quasi_identifiers:\n    - {table: spans, columns: [tenant_id, node], k: 10}\n"
        )
        cfg = load_jobs_config(path)
        assert cfg.tiers[0].databases == ("local", "sovereign")
        assert cfg.retention.personal.days == 45
        assert cfg.ledger.signing_key == "env:SOVTEL_LEDGER_KEY"
        assert cfg.audit.quasi_identifiers[0].k == 10

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"retention": {"personal": {"days": 7}}}, "between 30 and 90"),
            ({"retention": {"personnal": {}}}, "retention.personnal: unknown key"),
            ({"ledger": {"signing_key": "-----BEGIN PRIVATE KEY-----"}}, "by reference only"),
            ({"tiers": [{"databases": ["a"]}]}, "exactly one of path, dsn or host"),
            ({"tiers": [{"path": "/x", "databases": ["a-b"]}]}, "plain identifier"),
            ({"audit": {"quasi_identifiers": [{"columns": ["tenant_id"], "k": 1}]}}, "greater than or equal to 2"),
            ([1, 2], "must be a mapping"),
        ],
    )
    def test_every_problem_is_reported(self, data, message):
        """Invalid settings, unknown keys and literal secrets are errors naming where they are."""
        with pytest.raises(JobsConfigError) as info:
            parse_jobs_config(data)
        assert any(message in e for e in info.value.errors), info.value.errors
