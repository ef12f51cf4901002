"""Tests for the double hash: node-key HMAC at the collector, pepper HMAC at the store, key ids per
record, rotation without restart, erasure look-ups, and no raw identifier on any failure."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from processors import pepper, pseudonymise
from processors.keyring import KeyRing, KeyRingError, rotate
from sovtel.component import ComponentContext
from sovtel.config import resolve_secret
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry

NODE_KEY = "node-key-for-tests-0123456789abcdef"
PEPPER_KEY = "pepper-for-tests-0123456789abcdef"


def ctx(name: str) -> ComponentContext:
    return ComponentContext(name=name, telemetry=Telemetry().component(name), resolve_secret=resolve_secret)


@pytest.fixture
def ring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("T_NODE_1", NODE_KEY)
    monkeypatch.setenv("T_PEPPER_1", PEPPER_KEY)
    path = tmp_path / "ring.yaml"
    rotate(path, "node", ref="env:T_NODE_1")
    rotate(path, "pepper", ref="env:T_PEPPER_1")
    return path


def batch() -> Batch:
    table = table_from_columns(
        Signal.TRACES,
        {
            "user_id": ["alice", "bob", "alice", ""],
            "tenant_id": ["bank-a"] * 4,
            "session_id": ["s1", "s2", "s3", "s4"],
            "span_attributes": [[("enduser.id", "alice"), ("gen_ai.tool.name", "pay")], [], [], []],
            "event_attributes": [[[("enduser.id", "bob")]], [], [], []],
        },
    )
    return Batch(Signal.TRACES, table)


def h(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


class TestPseudonymise:
    def test_subject_columns_and_attributes_are_hmac(self, ring: Path) -> None:
        """Subject columns and configured attribute keys hold HMAC-SHA256 under the node key."""
        out = pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))(batch())
        assert out.table.column("user_id").to_pylist() == [
            h(NODE_KEY, "alice"),
            h(NODE_KEY, "bob"),
            h(NODE_KEY, "alice"),
            "",
        ]
        assert out.table.column("tenant_id")[0].as_py() == h(NODE_KEY, "bank-a")
        assert out.table.column("span_attributes")[0].as_py() == [
            ("enduser.id", h(NODE_KEY, "alice")),
            ("gen_ai.tool.name", "pay"),
        ]
        assert out.table.column("event_attributes")[0].as_py() == [[("enduser.id", h(NODE_KEY, "bob"))]]
        assert set(out.table.column("key_id").to_pylist()) == {"n1"}

    def test_pepper_completes_the_double_hash(self, ring: Path) -> None:
        """The store side applies HMAC with the pepper over the node pseudonym; key_id becomes n1:p1."""
        first = pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))(batch())
        out = pepper.create(ctx("pp"), pepper.Config(key_ring=ring))(first)
        assert out.table.column("user_id")[0].as_py() == h(PEPPER_KEY, h(NODE_KEY, "alice"))
        assert set(out.table.column("key_id").to_pylist()) == {"n1:p1"}
        assert out.table.column("span_attributes")[0].as_py()[0][1] == h(PEPPER_KEY, h(NODE_KEY, "alice"))

    def test_pepper_is_not_applied_twice(self, ring: Path) -> None:
        """A replayed, already peppered batch is left as it is."""
        p = pepper.create(ctx("pp"), pepper.Config(key_ring=ring))
        once = p(pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))(batch()))
        assert p(once).table.equals(once.table)

    def test_pepper_quarantines_unpseudonymised_rows(self, ring: Path) -> None:
        """Rows that reach the store without a node key id are quarantined, never stored raw."""
        p = pepper.create(ctx("pp"), pepper.Config(key_ring=ring))
        out = p(batch())
        assert out.table.column("user_id").to_pylist() == ["", "", "", ""]
        assert set(out.table.column("tier").to_pylist()) == {"local"}
        assert (
            p.ctx.telemetry.telemetry.total("sovtel_removed_values_total", reason="quarantined:not_pseudonymised") == 4
        )

    def test_erasure_lookup_covers_every_key_pair(self, ring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """subject_pseudonyms gives the subject's value under every node key and node-and-pepper pair."""
        monkeypatch.setenv("T_NODE_2", "second-node-key-0123456789abcdef")
        rotate(ring, "node", ref="env:T_NODE_2")
        got = pseudonymise.subject_pseudonyms("alice", KeyRing.load(ring))
        assert set(got) == {"n1", "n2", "n1:p1", "n2:p1"}
        assert got["n1:p1"] == h(PEPPER_KEY, h(NODE_KEY, "alice"))
        stored = pepper.create(ctx("pp"), pepper.Config(key_ring=ring))(
            pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))(batch())
        )
        assert got["n2:p1"] in stored.table.column("user_id").to_pylist()


class TestRotation:
    def test_rotation_takes_effect_without_restart(self, ring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """After `keys rotate`, a running processor switches to the new key id; old ids stay in the ring."""
        now = [0.0]
        source = pseudonymise.KeySource(ring, "node", resolve_secret, reload_interval_s=5, clock=lambda: now[0])
        p = pseudonymise.Pseudonymise(ctx("ps"), pseudonymise.Config(key_ring=ring), keys=source)
        assert set(p(batch()).table.column("key_id").to_pylist()) == {"n1"}
        monkeypatch.setenv("T_NODE_2", "second-node-key-0123456789abcdef")
        rotate(ring, "node", ref="env:T_NODE_2")
        os.utime(ring, (1, 10**9 + 5))  # a visible mtime change even on coarse file systems
        now[0] = 10.0
        out = p(batch())
        assert set(out.table.column("key_id").to_pylist()) == {"n2"}
        assert out.table.column("user_id")[0].as_py() == h("second-node-key-0123456789abcdef", "alice")
        assert set(KeyRing.load(ring).keyset("node").keys) == {"n1", "n2"}

    def test_broken_reload_keeps_the_current_key(self, ring: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A ring edited into an invalid state keeps the running key and logs why (no secret in the log)."""
        now = [0.0]
        source = pseudonymise.KeySource(ring, "node", resolve_secret, reload_interval_s=1, clock=lambda: now[0])
        ring.write_text("node: {active: n9, keys: {}}\n")
        os.utime(ring, (1, 10**9 + 7))
        now[0] = 5.0
        with caplog.at_level(logging.WARNING):
            assert source.current().key_id == "n1"
        assert "reload failed" in caplog.text
        assert NODE_KEY not in caplog.text

    def test_generated_key_is_a_private_file(self, tmp_path: Path) -> None:
        """A generated key is a 0600 file referenced by path; the ring holds no key material."""
        path = tmp_path / "r.yaml"
        key_id, ref = rotate(path, "node")
        key_file = Path(ref.removeprefix("file:"))
        assert key_id == "n1" and ref.startswith("file:")
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert key_file.read_text().strip() not in path.read_text()
        assert rotate(path, "node")[0] == "n2"
        assert KeyRing.load(path).active("node") == "n2"

    def test_staged_key_is_not_active(self, ring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """--no-activate adds the key without switching to it."""
        monkeypatch.setenv("T_NODE_3", "third-node-key-0123456789abcdef")
        rotate(ring, "node", ref="env:T_NODE_3", activate=False)
        assert KeyRing.load(ring).active("node") == "n1"


class TestFailClosed:
    def test_unresolvable_key_fails_at_start(self, tmp_path: Path) -> None:
        """A missing secret stops start-up with the key id, not the reference value."""
        path = tmp_path / "r.yaml"
        rotate(path, "node", ref="env:SOVTEL_TEST_UNSET_KEY")
        c = ctx("ps")
        with pytest.raises(KeyRingError, match="node key n1"):
            pseudonymise.create(c, pseudonymise.Config(key_ring=path)).start(c)

    def test_unresolved_reference_is_not_used_as_key(self, ring: Path) -> None:
        """A resolver that returns the reference itself (a test double) is refused."""
        c = ComponentContext(name="ps", telemetry=Telemetry().component("ps"))
        with pytest.raises(KeyRingError, match="not resolved"):
            pseudonymise.create(c, pseudonymise.Config(key_ring=ring)).start(c)

    def test_hashing_error_quarantines_with_subjects_emptied(self, ring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If hashing fails, subject columns and attribute values are emptied, never forwarded raw."""
        p = pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))

        def boom(*_a: object, **_k: object) -> None:
            raise RuntimeError("hmac failed")

        monkeypatch.setattr(p.hasher, "apply", boom)
        out = p(batch())
        assert out.table.column("user_id").to_pylist() == ["", "", "", ""]
        assert out.table.column("span_attributes")[0].as_py() == [("enduser.id", ""), ("gen_ai.tool.name", "")]
        assert (
            p.ctx.telemetry.telemetry.total("sovtel_removed_values_total", reason="quarantined:pseudonymise_error") == 4
        )

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("node: {active: n2, keys: {n1: {ref: 'env:X'}}}", "active key"),
            ("node: {active: n1, keys: {n1: {ref: 'literal-secret'}}}", "reference"),
            ("node: {active: 'N:1', keys: {'N:1': {ref: 'env:X'}}}", "key ids"),
            ("node: [1, 2", "YAML"),
        ],
    )
    def test_malformed_rings_are_rejected(self, tmp_path: Path, text: str, problem: str) -> None:
        """Inconsistent or literal-secret rings fail to load with a clear reason."""
        path = tmp_path / "r.yaml"
        path.write_text(text)
        with pytest.raises(KeyRingError, match=problem):
            KeyRing.load(path)

    def test_validate_config_rejects_unknown_columns(self, ring: Path) -> None:
        """Only subject columns can be pseudonymised by column name."""
        assert pseudonymise.validate_config(pseudonymise.Config(key_ring=ring, columns=["trace_id"]))
        assert pseudonymise.validate_config(pseudonymise.Config(key_ring=ring)) == []


def test_logs_and_metrics_are_pseudonymised(ring: Path) -> None:
    """Logs (tenant, user) and metrics (tenant) get the same treatment; metrics have no key_id column."""
    p = pseudonymise.create(ctx("ps"), pseudonymise.Config(key_ring=ring))
    logs = p(Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {"user_id": ["alice"], "tenant_id": ["t"]})))
    assert (
        logs.table.column("user_id")[0].as_py() == h(NODE_KEY, "alice")
        and logs.table.column("key_id")[0].as_py() == "n1"
    )
    metrics = p(Batch(Signal.METRICS, table_from_columns(Signal.METRICS, {"tenant_id": ["t"]})))
    assert metrics.table.column("tenant_id")[0].as_py() == h(NODE_KEY, "t")


class TestEchoedIdentifiers:
    def test_identifier_repeated_in_text_is_replaced_by_its_pseudonym(self) -> None:
        """A user id an application also wrote into a log line is stored as the row's pseudonym, not in clear."""
        from processors.pseudonymise import replace_echoes
        from sovtel.records import Signal, table_from_columns

        original = table_from_columns(Signal.LOGS, {"user_id": ["user-0386", "u1"], "body": [
            "inference failed for user-0386", "u1 is too short to be replaced safely"]})
        hashed = original.set_column(original.schema.get_field_index("user_id"),
                                     original.schema.field("user_id"), pa.array(["h" * 32, "g" * 32]))
        out, n = replace_echoes(original, hashed, Signal.LOGS, ["user_id"])
        assert n == 1
        assert out.column("body").to_pylist() == ["inference failed for " + "h" * 32,
                                                  "u1 is too short to be replaced safely"]
