"""The job session: which stores, tier databases, AI-Act database, ledger and keys a compliance job gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.config import AiActStoreConfig, JobsConfig, LedgerConfig, TierStore
from retention.policies import RetentionPolicies
from retention.session import (
    CheckpointOptions,
    JobInputError,
    PolicyOverrides,
    SessionOptions,
    checkpoint_keys,
    open_session,
)
from storage.backend import StoreConfig
from tests.retention.conftest import Databases


class TestOpenSession:
    def test_every_store_given_holds_every_database_named(self, two_tiers: Databases) -> None:
        """A store given with two databases yields two tiers on one store, with the ledger in the AI-Act database."""
        options = SessionOptions(stores=(StoreConfig(dsn=two_tiers.dsn),), databases=two_tiers.tiers,
                                 aiact_database=two_tiers.aiact, actor="dpo", ner="off")
        with open_session(options) as session:
            assert [t.database for t in session.tiers] == list(two_tiers.tiers)
            assert session.by_store() == [(session.aiact_store, list(two_tiers.tiers))]
            assert session.ledger.database == two_tiers.aiact and session.ledger.actor == "dpo"
            assert session.aiact_database_in(session.aiact_store) == two_tiers.aiact

    def test_the_configuration_names_tiers_and_the_aiact_store(self, dbs: Databases) -> None:
        """Without stores given, the configuration's tier stores and AI-Act database are used (one store opened)."""
        config = JobsConfig(tiers=(TierStore(dsn=dbs.dsn, databases=dbs.tiers),),
                            aiact=AiActStoreConfig(dsn=dbs.dsn, database=dbs.aiact))
        with open_session(SessionOptions(config=config, ner="off")) as session:
            assert [t.database for t in session.tiers] == list(dbs.tiers)
            assert session.aiact_database == dbs.aiact
            assert len(session.stores) == 1 and session.aiact_store is session.tiers[0].store

    def test_no_store_at_all_is_bad_input(self) -> None:
        """Neither stores nor configured tiers: JobInputError, nothing opened."""
        with pytest.raises(JobInputError, match="no tier store"):
            open_session(SessionOptions())

    @pytest.mark.parametrize("options", [
        SessionOptions(databases=("tier-a",)),
        SessionOptions(aiact_database="ai act"),
    ])
    def test_database_names_must_be_plain_identifiers(self, options: SessionOptions) -> None:
        """A tier or AI-Act database name that is not a plain identifier is refused before any store opens."""
        with pytest.raises(JobInputError, match="not a plain identifier"):
            open_session(options)


class TestPolicyOverrides:
    def test_no_override_keeps_the_configured_policies(self) -> None:
        """Empty overrides return the base policies unchanged."""
        base = RetentionPolicies()
        assert PolicyOverrides().apply_to(base) == base

    def test_an_override_outside_its_range_is_bad_input(self) -> None:
        """Ten days of personal telemetry without a reason is refused with the policy's own message."""
        with pytest.raises(JobInputError, match="between 30 and 90"):
            PolicyOverrides(personal_days=10).apply_to(RetentionPolicies())

    def test_an_override_replaces_one_period(self) -> None:
        """Sixty personal days replace the configured period; the others stay."""
        base = RetentionPolicies()
        policies = PolicyOverrides(personal_days=60).apply_to(base)
        assert policies.personal.days == 60 and policies.operational == base.operational


class TestCheckpointKeys:
    def test_options_win_over_the_configuration(self, signing_key: tuple[object, Path, str], tmp_path: Path) -> None:
        """A checkpoint directory given replaces the configured one; the public key is derived from the signing key."""
        _, _, ref = signing_key
        config = JobsConfig(ledger=LedgerConfig(checkpoint_dir=tmp_path / "configured", signing_key=ref))
        keys = checkpoint_keys(CheckpointOptions(directory=tmp_path / "given"), config)
        assert keys.directory == tmp_path / "given"
        assert keys.private is not None and keys.public is not None and keys.public_key_file is None

    def test_nothing_configured_means_no_keys(self) -> None:
        """Without options or configuration there is no directory and no key."""
        keys = checkpoint_keys(CheckpointOptions(), JobsConfig())
        assert (keys.directory, keys.private, keys.public) == (None, None, None)
