"""Tests for `sovtel privacy scrub|budget` and `sovtel keys rotate|list`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from processors import dp
from retention.dp_ledger import ClickHouseLedger
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate
from tests.app.test_query import closed_port, run_sovtel

KEY = "cli-test-pii-key-0123456789abcdef"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SOVTEL_PII_KEY", KEY)
    return CliRunner()


def scrub(runner: CliRunner, text: str, *args: str) -> tuple[int, list[str], str]:
    result = runner.invoke(cli, ["privacy", "scrub", *args], input=text.encode())
    return result.exit_code, result.stdout.splitlines(), result.stderr


class TestScrub:
    def test_every_string_is_masked_line_for_line(self, runner: CliRunner) -> None:
        """One line out per line in, same order; strings (a "text" field too) are masked, the rest kept."""
        lines = [
            {"text": "I am Anna Schmidt, mail anna@example.de", "n": 3},
            {"messages": [{"role": "user", "content": "IBAN DE89 3704 0044 0532 0130 00"}]},
            "call +49 30 901820",
            {"model": "llama-3.1-8b-instruct", "latency_s": 0.73},
        ]
        code, out, err = scrub(runner, "".join(json.dumps(x) + "\n" for x in lines))
        assert code == 0, err
        assert len(out) == 4
        first = json.loads(out[0])
        assert first["n"] == 3 and "Anna" not in first["text"] and "<EMAIL_ADDRESS:" in first["text"]
        assert "<IBAN_CODE:" in json.loads(out[1])["messages"][0]["content"]
        assert json.loads(out[2]).startswith("call <PHONE_NUMBER:")
        assert json.loads(out[3]) == lines[3]

    def test_bad_lines_are_reported_by_number_never_echoed(self, runner: CliRunner) -> None:
        """A non-JSON line becomes an error object, is reported on stderr by line number only, exit 1."""
        text = '{"text": "ok"}\nnot json but anna@example.de\n\n{"text": "bye"}\n'
        code, out, err = scrub(runner, text)
        assert code == 1
        assert out[0] == '{"text": "ok"}' and out[2] == "" and out[3] == '{"text": "bye"}'
        assert json.loads(out[1]) == {"error": "invalid JSON", "line": 2}
        assert "line 2: not valid JSON" in err
        assert "anna@example.de" not in err and "anna@example.de" not in "\n".join(out)

    def test_tokens_follow_the_configured_key(
        self, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With -c the configuration's pii processor (and its key) is used: same input, same token."""
        monkeypatch.setenv("OTHER_PII_KEY", "another-pii-key-0123456789abcdef")
        config = tmp_path / "sovtel.yaml"
        config.write_text(
            "receivers:\n  otlp: {}\nprocessors:\n  pii:\n    key: env:OTHER_PII_KEY\n    ner: 'off'\n"
            f"exporters:\n  clickhouse:\n    path: {tmp_path / 'store'}\n"
            "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [pii]\n"
            "      exporters: [clickhouse]\n      unminimised: test of the pii key\n"
        )
        line = '{"text": "anna@example.de"}\n'
        default = scrub(runner, line)[1][0]
        code, out, err = scrub(runner, line * 2, "-c", str(config))
        assert code == 0, err
        assert out[0] == out[1] != default
        assert "<EMAIL_ADDRESS:" in out[0]

    def test_config_without_pii_is_rejected(self, runner: CliRunner, tmp_path: Path) -> None:
        """A configuration whose pipelines use no pii processor is a usage error (exit 2)."""
        config = tmp_path / "sovtel.yaml"
        config.write_text("service:\n  pipelines:\n    traces:\n      receivers: [r]\n      exporters: [e]\n")
        code, _, err = scrub(runner, "{}\n", "-c", str(config))
        assert code == 2 and "sovtel" in err


class TestKeys:
    def test_rotate_then_list(self, tmp_path: Path) -> None:
        """rotate adds n1 then n2 (active); list shows both, marks the active one, and checks them."""
        ring = tmp_path / "ring.yaml"
        r = CliRunner()
        assert r.invoke(cli, ["keys", "rotate", "--ring", str(ring), "--kind", "node"]).exit_code == 0
        result = r.invoke(cli, ["keys", "rotate", "--ring", str(ring), "--kind", "node"])
        assert result.exit_code == 0 and "node key n2 added and active" in result.stdout
        listing = r.invoke(cli, ["keys", "list", "--ring", str(ring), "--check"])
        assert listing.exit_code == 0
        assert "* node   n2" in listing.stdout and "  node   n1" in listing.stdout
        assert listing.stdout.count(" ok") == 2
        for key_file in (tmp_path / "keys").iterdir():
            assert key_file.read_text().strip() not in listing.stdout + ring.read_text()

    def test_literal_secret_is_refused(self, tmp_path: Path) -> None:
        """--ref must be a reference, never the key itself."""
        result = CliRunner().invoke(
            cli, ["keys", "rotate", "--ring", str(tmp_path / "r.yaml"), "--kind", "pepper", "--ref", "s3cr3t-key"]
        )
        assert result.exit_code == 2 and "reference" in result.stderr

    def test_list_check_fails_on_unresolvable_key(self, tmp_path: Path) -> None:
        """A reference that cannot be resolved makes `keys list --check` exit 1 and say which key."""
        ring = tmp_path / "r.yaml"
        CliRunner().invoke(
            cli, ["keys", "rotate", "--ring", str(ring), "--kind", "pepper", "--ref", "env:SOVTEL_UNSET_X"]
        )
        result = CliRunner().invoke(cli, ["keys", "list", "--ring", str(ring), "--check"])
        assert result.exit_code == 1 and "FAILED" in result.stdout and "p1" in result.stdout


class TestBudget:
    def test_shows_spent_and_remaining(self, chdb_dir: Path, chdb_dsn: str, unique_db: str) -> None:
        """`privacy budget` reads the ledger table and prints spent, remaining and refusals per tenant."""
        store = Store.from_config(StoreConfig(dsn=chdb_dsn))
        migrate(store, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_ai"), include_aiact=False)
        ledger = dp.BudgetLedger(ClickHouseLedger(store, unique_db), 1.0)
        w = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
        ledger.charge("tenant-a", w, 0.4, "r")
        ledger.charge("tenant-a", w, 0.8, "r")
        store.close()
        result = CliRunner().invoke(
            cli, ["privacy", "budget", "--store", str(chdb_dir), "--database", unique_db, "--budget", "1", "--json"]
        )
        assert result.exit_code == 0, result.stderr
        rows = json.loads(result.stdout)
        assert rows == [
            {"tenant_id": "tenant-a", "window_start": w.isoformat(), "spent": 0.4, "remaining": 0.6,
             "budget": 1.0, "releases": 1, "refusals": 1}
        ]  # fmt: skip
        text = CliRunner().invoke(cli, ["privacy", "budget", "--store", str(chdb_dir), "--database", unique_db])
        # Without --budget the default of 3 epsilon per window applies.
        assert "tenant-a" in text.stdout and "2.600" in text.stdout and "budget: 3 epsilon" in text.stdout

    def test_needs_a_store(self) -> None:
        """Without --store, --url or a config the command explains what is missing (exit 2)."""
        result = CliRunner().invoke(cli, ["privacy", "budget"])
        assert result.exit_code == 2 and "--store" in result.stderr


class TestUnreachableStore:
    @pytest.mark.parametrize("command", ["budget", "release", "set-budget"])
    def test_a_store_that_does_not_answer_is_one_line(self, command: str) -> None:
        """`privacy budget|release|set-budget` with a store URL nothing answers on: one stderr line, exit 1."""
        extra = ["--epsilon", "1"] if command == "set-budget" else []
        code, lines, stderr = run_sovtel("privacy", command, "--url", f"http://reader@127.0.0.1:{closed_port()}",
                                         *extra)
        assert code == 1
        assert "Traceback" not in stderr
        assert len(lines) == 1 and lines[0].startswith(f"sovtel privacy {command}: cannot open store"), stderr

    def test_a_missing_key_ring_is_one_line(self, tmp_path: Path) -> None:
        """`keys list` on a ring file that does not exist says so in one line and exits 1."""
        code, lines, stderr = run_sovtel("keys", "list", "--ring", str(tmp_path / "missing.yaml"))
        assert code == 1 and "Traceback" not in stderr
        assert len(lines) == 1 and "cannot read" in lines[0], stderr
