"""`sovtel retention|audit|aiact`: exit 0 on success, 1 when problems are found, 2 on bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from app.cli import cli
from retention import jobs as retention_jobs
from retention.erasure import ErasureReport, TableErasure
from tests.app.test_query import closed_port, run_sovtel
from tests.retention.conftest import NOW, count, insert_spans, stop_ttl_merges


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _where(d) -> list[str]:
    return ["--url", d.dsn, "--database", d.tiers[0], "--aiact-database", d.aiact, "--ner", "off"]


class TestMounted:
    def test_groups_are_mounted_in_the_sovtel_cli(self):
        """The core CLI mounts retention, audit and aiact with their commands."""
        assert {"apply", "status", "erase"} <= set(cli.commands["retention"].commands)
        assert {"run", "verify", "checkpoint", "keygen"} <= set(cli.commands["audit"].commands)
        assert {"register-model", "record-evaluation", "record-incident", "aggregate", "export"} <= set(
            cli.commands["aiact"].commands)


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("retention", "apply"), "give --store DIR, --url URL or --config FILE"),
            (("retention", "status", "--store", "/nonexistent/sovtel"), "no such directory"),
            (("retention", "status", "--url", "ftp://x"), "expected http://"),
            (("retention", "apply", "--url", "{dsn}", "--personal-days", "10"), "between 30 and 90"),
            (("retention", "apply", "--url", "{dsn}", "--aiact-years", "5"), "at least 10 years"),
            (("retention", "erase", "--url", "{dsn}"), "give --subject ID"),
            (("retention", "erase", "--url", "{dsn}", "--subject", "alice"), "give --keyring FILE"),
            (("audit", "verify", "--url", "{dsn}", "--checkpoints", "{tmp}"), "need --public-key"),
            (("audit", "checkpoint", "--url", "{dsn}"), "give --checkpoints DIR and --signing-key"),
            (("aiact", "register-model", "--url", "{dsn}", "--model", "m", "--version", "1",
              "--hyperparameters", "[1, 2]"), "must be a JSON/YAML object"),
            (("aiact", "register-model", "--url", "{dsn}", "--model", "", "--version", "1"), "model"),
            (("retention", "status", "--config", "{tmp}/missing.yaml"), "cannot read file"),
            (("retention", "status", "--url", "{dsn}", "--database", "tier-a"), "not a plain identifier"),
            (("retention", "erase", "--url", "{dsn}", "--subject", "a", "--no-pseudonyms", "--receipt-key",
              "env:SOVTEL_TEST_UNSET_KEY"), "SOVTEL_TEST_UNSET_KEY is not set"),
        ],
    )
    def test_exit_2_with_a_message(self, args, message, chdb_dsn, tmp_path):
        """Missing, contradictory or out-of-policy input exits 2 and says what is wrong."""
        result = _invoke(*(a.format(dsn=chdb_dsn, tmp=tmp_path) for a in args))
        assert result.exit_code == 2, result.output
        assert message in result.output

    def test_personal_data_in_a_model_registration_exits_2_naming_the_field(self, aiact_only):
        """register-model refuses documentation holding an e-mail address: exit 2, the field named."""
        result = _invoke("aiact", "register-model", "--url", aiact_only.dsn, "--aiact-database", aiact_only.aiact,
                         "--ner", "off", "--model", "m", "--version", "1",
                         "--training-data", "tickets exported by jane.doe@example.com")
        assert result.exit_code == 2
        assert "field 'training_data' looks like personal data (EMAIL_ADDRESS)" in result.output
        assert "jane.doe" not in result.output


class TestRetentionCommands:
    def test_apply_removes_overdue_rows_and_status_shows_it(self, dbs):
        """apply exits 0 and reports rows removed per table; status then shows every table ok."""
        stop_ttl_merges(dbs.store, dbs.tiers[0], ("spans",))
        insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW - dt.timedelta(days=40), "user_id": "u"},
                                               {"ts": NOW, "user_id": "v"}])
        before = _invoke("retention", "status", *_where(dbs), "--json")
        assert before.exit_code == 0
        assert {r["table"]: r["status"] for r in json.loads(before.output)}["spans"] == "overdue"
        result = _invoke("retention", "apply", *_where(dbs), "--json")
        assert result.exit_code == 0, result.output
        [report] = json.loads(result.output)
        assert {t["table"]: t["rows_removed"] for t in report["tables"]}[f"{dbs.tiers[0]}.spans"] == 1
        after = _invoke("retention", "status", *_where(dbs), "--json")
        assert {r["status"] for r in json.loads(after.output)} == {"ok"}
        table = _invoke("retention", "status", *_where(dbs), env={"COLUMNS": "250"})
        assert f"{dbs.tiers[0]}.spans" in table.output and "30 days" in table.output

    def test_erase_exits_0_when_complete(self, dbs, keys):
        """erase deletes the subject's rows and prints the receipt's ledger entry."""
        insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW, "user_id": keys.stored("alice")},
                                               {"ts": NOW, "user_id": keys.stored("bob")}])
        result = _invoke("retention", "erase", *_where(dbs), "--subject", "alice", "--keyring", str(keys.path))
        assert result.exit_code == 0, result.output
        assert "1 row(s) deleted" in result.output and "(complete)" in result.output
        assert count(dbs.store, f"SELECT count() FROM {dbs.tiers[0]}.spans") == 1

    def test_erase_exits_1_when_rows_remain(self, dbs, keys, monkeypatch):
        """When anything of the subject remains, erase says INCOMPLETE and exits 1."""
        def incomplete(subjects, tiers, ledger, **_kwargs):
            report = ErasureReport("ab" * 32, "pepper:p1", (), "t0", "t1",
                                   [TableErasure("s", dbs.tiers[0], "spans", matched=2, deleted=1, remaining=1)], 9)
            return [report]

        monkeypatch.setattr(retention_jobs, "erase", incomplete)
        result = _invoke("retention", "erase", *_where(dbs), "--subject", "alice", "--keyring", str(keys.path))
        assert result.exit_code == 1
        assert "INCOMPLETE" in result.output


class TestAuditCommands:
    def test_run_writes_report_and_metrics_and_exits_1_on_findings(self, dbs, tmp_path):
        """audit run with no collector heartbeats fails that check: exit 1, HTML and gauges written."""
        html, prom = tmp_path / "evidence.html", tmp_path / "audit.prom"
        result = _invoke("audit", "run", *_where(dbs), "--json", "--html", str(html), "--metrics-textfile", str(prom),
                         "--lookback-hours", "1")
        assert result.exit_code == 1, result.output
        run = json.loads(result.output)
        assert {c["name"]: c["status"] for c in run["checks"]}["collector_gaps"] == "fail"
        assert 'data-check="collector_gaps"' in html.read_text()
        assert 'sovtel_audit_check_status{check="collector_gaps"} 0.0' in prom.read_text()

    def test_checkpoint_then_verify_then_tamper(self, aiact_only, signing_key, tmp_path):
        """verify exits 0 on an untouched ledger with checkpoints and 1 after an entry was modified."""
        _, public, ref = signing_key
        where = ["--url", aiact_only.dsn, "--aiact-database", aiact_only.aiact, "--ner", "off"]
        cps = ["--checkpoints", str(tmp_path / "cp")]
        assert _invoke("aiact", "record-incident", *where, "--id", "INC-7", "--model", "m",
                       "--summary", "timeouts").exit_code == 0
        made = _invoke("audit", "checkpoint", *where, *cps, "--signing-key", ref)
        assert made.exit_code == 0, made.output
        ok = _invoke("audit", "verify", *where, *cps, "--public-key", str(public))
        assert ok.exit_code == 0, ok.output
        assert "verified" in ok.output
        aiact_only.store.command(f"ALTER TABLE {aiact_only.aiact}.ledger UPDATE actor = 'x' WHERE seq = 1 "
                                 "SETTINGS mutations_sync = 2")
        bad = _invoke("audit", "verify", *where, *cps, "--public-key", str(public), "--json")
        assert bad.exit_code == 1
        assert [p["kind"] for p in json.loads(bad.output)["problems"]] == ["modified"]

    def test_keygen_writes_a_pair_once(self, tmp_path):
        """keygen writes a private and a public key and refuses to overwrite them."""
        assert _invoke("audit", "keygen", "--out", str(tmp_path)).exit_code == 0
        assert (tmp_path / "ledger-signing.pem").stat().st_mode & 0o777 == 0o600
        assert _invoke("audit", "keygen", "--out", str(tmp_path)).exit_code == 2


class TestAiActCommands:
    def test_register_record_and_export(self, aiact_only, tmp_path):
        """register-model and record-evaluation exit 0; export writes a manifest covering the ledger."""
        where = ["--url", aiact_only.dsn, "--aiact-database", aiact_only.aiact, "--ner", "off"]
        reg = _invoke("aiact", "register-model", *where, "--model", "m-1", "--version", "2026.11",
                      "--hyperparameters", '{"temperature": 0.2}', "--training-data", "public corpus",
                      "--deployment-config", "gpus: 2")
        assert reg.exit_code == 0, reg.output
        ev = _invoke("aiact", "record-evaluation", *where, "--model", "m-1", "--version", "2026.11", "--suite",
                     "truthfulqa", "--metric", "accuracy", "--value", "0.81", "--threshold", "0.8", "--passed")
        assert ev.exit_code == 0, ev.output
        out = tmp_path / "bundle"
        exported = _invoke("aiact", "export", *where, "--out", str(out))
        assert exported.exit_code == 0, exported.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["files"]["tables/model_versions.jsonl"]["rows"] == 1
        assert manifest["files"]["ledger.jsonl"]["rows"] == manifest["ledger"]["entries"] == 3


class TestUnreachableStore:
    @pytest.mark.parametrize("args", [
        ("retention", "status"), ("audit", "verify"), ("aiact", "export", "--out", "{tmp}/bundle"),
    ], ids=["retention", "audit", "aiact"])
    def test_a_store_that_does_not_answer_is_one_line(self, args, tmp_path):
        """A store URL nothing answers on gives one stderr line and exit 1 for each group, never a traceback."""
        url = f"http://reader@127.0.0.1:{closed_port()}"
        code, lines, stderr = run_sovtel(*(a.format(tmp=tmp_path) for a in args), "--url", url)
        assert code == 1
        assert "Traceback" not in stderr
        assert len(lines) == 1 and lines[0].startswith("sovtel: store failed: cannot open store"), stderr
