"""A tampered ledger through the CLI: `audit verify` finds each of the four tamper kinds read-only, and a
truncated ledger (checkpoint at 23, entries from 20 on deleted) locks none of `audit verify`, `audit run`,
`aiact export` and `query`: each says what happened in one line and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from retention.ledger import Ledger
from tests.retention.conftest import Databases

_CHECKPOINT_AT = 23


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _where(d: Databases) -> list[str]:
    return ["--url", d.dsn, "--database", d.tiers[0], "--aiact-database", d.aiact, "--ner", "off"]


def _rows(ledger: Ledger, seqs: tuple[int, ...]) -> list[tuple]:
    return ledger.store.query_rows(
        f"SELECT seq, timestamp, action, actor, payload, prev_hash, hash FROM {ledger.table} "
        f"WHERE seq IN ({', '.join(map(str, seqs))})")


def _modify(ledger: Ledger) -> None:
    ledger.store.command(f"ALTER TABLE {ledger.table} UPDATE payload = '{{\"step\":99}}' WHERE seq = 5 "
                         "SETTINGS mutations_sync = 2")


def _delete(ledger: Ledger) -> None:
    ledger.store.command(f"ALTER TABLE {ledger.table} DELETE WHERE seq = 5 SETTINGS mutations_sync = 2")


def _reorder(ledger: Ledger) -> None:
    rows = _rows(ledger, (5, 6))
    ledger.store.command(f"ALTER TABLE {ledger.table} DELETE WHERE seq IN (5, 6) SETTINGS mutations_sync = 2")
    for seq, ts, action, actor, payload, prev_hash, hash_ in rows:
        ledger.store.command(
            f"INSERT INTO {ledger.table} (seq, timestamp, action, actor, payload, prev_hash, hash) VALUES "
            "({s:UInt64}, {t:DateTime64(3)}, {a:String}, {who:String}, {p:String}, {ph:String}, {h:String})",
            {"s": 11 - seq, "t": ts, "a": action, "who": actor, "p": payload, "ph": prev_hash, "h": hash_},
        )


def _truncate(ledger: Ledger) -> None:
    # The reproduction: a checkpoint at 23, then everything from 20 on deleted.
    ledger.store.command(f"ALTER TABLE {ledger.table} DELETE WHERE seq >= 20 SETTINGS mutations_sync = 2")


@pytest.fixture
def checkpointed(dbs: Databases, guard, signing_key, tmp_path) -> tuple[Ledger, list[str]]:
    """A ledger of 25 entries with a signed checkpoint at seq 23, and the options to verify against it."""
    _, public, ref = signing_key
    ledger = Ledger(dbs.store, dbs.aiact, actor="test-suite", guard=guard)
    for i in range(1, _CHECKPOINT_AT + 1):
        ledger.append("test.step", {"step": i})
    cps = ["--checkpoints", str(tmp_path / "cp")]
    made = _invoke("audit", "checkpoint", *_where(dbs), *cps, "--signing-key", ref)
    assert made.exit_code == 0, made.output
    for i in range(_CHECKPOINT_AT + 1, 26):
        ledger.append("test.step", {"step": i})
    return ledger, [*cps, "--public-key", str(public)]


def _one_clear_line(result: Result, *needles: str) -> None:
    """Exit 1 with a single stderr line that names the problem, and never the old lock-up message."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert "attempts" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


class TestVerifyFindsEveryTamperKind:
    @pytest.mark.parametrize(
        ("tamper", "kind"),
        [(_modify, "modified"), (_delete, "missing"), (_reorder, "reordered"), (_truncate, "truncated")],
        ids=["modify", "delete", "reorder", "truncate"],
    )
    def test_audit_verify_exits_1_with_a_finding_of_the_kind(
        self, dbs: Databases, checkpointed: tuple[Ledger, list[str]], tamper: Callable[[Ledger], None], kind: str
    ) -> None:
        """Each of modify, delete, reorder and truncate makes `audit verify` exit 1 naming that kind."""
        ledger, cps = checkpointed
        assert _invoke("audit", "verify", *_where(dbs), *cps).exit_code == 0
        tamper(ledger)
        result = _invoke("audit", "verify", *_where(dbs), *cps, "--json")
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert kind in {p["kind"] for p in report["problems"]}, report["problems"]
        if kind == "truncated":
            # Nothing is appended after a cut-off tail, and the output says that the read went unrecorded.
            assert report["access_seq"] is None
            assert "not recorded" in report["access_refused"]
            assert ledger.head() is not None and ledger.head().seq == 19  # type: ignore[union-attr]
        else:
            # The tail is intact: the read is recorded after it, as always.
            assert report["access_seq"] == 27  # 26 is the access entry of the first, clean verification

    def test_verify_without_checkpoints_still_reports_the_truncation(
        self, dbs: Databases, checkpointed: tuple[Ledger, list[str]]
    ) -> None:
        """Without checkpoints the removed tail shows when the read is recorded: a truncated finding, exit 1."""
        ledger, _ = checkpointed
        _truncate(ledger)
        result = _invoke("audit", "verify", *_where(dbs))
        assert result.exit_code == 1, result.output
        assert "PROBLEM [truncated]" in result.stdout
        assert "entry 20 was written before and has been removed" in result.stdout
        assert "not recorded" in result.stdout


class TestTruncationDoesNotLockTheCli:
    @pytest.mark.parametrize("with_checkpoints", [True, False], ids=["checkpoints", "no-checkpoints"])
    def test_audit_run_and_export_refuse_in_one_line(
        self, dbs: Databases, checkpointed: tuple[Ledger, list[str]], tmp_path, with_checkpoints: bool
    ) -> None:
        """`audit run` and `aiact export` on a truncated ledger exit 1 at once, naming the truncation."""
        ledger, cps = checkpointed
        _truncate(ledger)
        extra = cps if with_checkpoints else []
        _one_clear_line(_invoke("audit", "run", *_where(dbs), *extra, "--json"), "truncated")
        _one_clear_line(_invoke("aiact", "export", *_where(dbs), *extra, "--out", str(tmp_path / "bundle")),
                        "truncated")
        assert not (tmp_path / "bundle" / "manifest.json").exists()
        assert ledger.head().seq == 19  # type: ignore[union-attr]

    def test_query_refuses_in_one_line_and_runs_again_once_restored(
        self, dbs: Databases, checkpointed: tuple[Ledger, list[str]], chdb_dir
    ) -> None:
        """`sovtel query "SELECT 1"` records and runs on an intact tail, and exits 1 in one line once truncated."""
        ledger, _ = checkpointed
        env = {"SOVTEL_AIACT_DATABASE": dbs.aiact}
        ok = _invoke("query", "--store", str(chdb_dir), "SELECT 1 AS x", env=env)
        assert ok.exit_code == 0, ok.output
        assert ledger.head().action == "access"  # type: ignore[union-attr]
        _truncate(ledger)
        _one_clear_line(_invoke("query", "--store", str(chdb_dir), "SELECT 1", env=env), "truncated", "not run")

    @pytest.mark.parametrize(("tamper", "_kind"), [(_modify, "modified"), (_delete, "missing"),
                                                   (_reorder, "reordered")], ids=["modify", "delete", "reorder"])
    def test_reads_are_still_recorded_when_only_the_middle_was_tampered(
        self, dbs: Databases, checkpointed: tuple[Ledger, list[str]], chdb_dir, tamper: Callable[[Ledger], None],
        _kind: str,
    ) -> None:
        """With the tail intact, `query` keeps recording its access entry after the head and runs."""
        ledger, _ = checkpointed
        tamper(ledger)
        result = _invoke("query", "--store", str(chdb_dir), "SELECT 1", env={"SOVTEL_AIACT_DATABASE": dbs.aiact})
        assert result.exit_code == 0, result.output
        head = ledger.head()
        assert head is not None and (head.seq, head.action) == (26, "access")
