"""Tests for app.cli: exit codes and messages people see."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_config_validate_accepts_the_example() -> None:
    """A valid file exits 0 and says so."""
    r = CliRunner().invoke(cli, ["config", "validate", str(ROOT / "examples" / "single-node.yaml")])
    assert r.exit_code == 0, r.output
    assert "valid" in r.output


def test_config_validate_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    """An invalid file exits 2 and prints each error with its path."""
    f = tmp_path / "bad.yaml"
    f.write_text(
        "receivers:\n  otlp: {protocols: {http: {endpoint: 1}}}\n"
        "exporters:\n  clickhouse: {path: /x, password: hunter2}\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [clickhouse]}\n"
    )
    r = CliRunner().invoke(cli, ["config", "validate", str(f)])
    assert r.exit_code == 2
    assert "exporters.clickhouse" in r.output
    assert "error(s)" in r.output


def test_query_refuses_writes_with_exit_2(tmp_path: Path) -> None:
    """sovtel query refuses a write statement before touching any store."""
    r = CliRunner().invoke(cli, ["query", "--store", str(tmp_path), "DROP TABLE sovtel.spans"])
    assert r.exit_code == 2
    assert "not allowed" in r.output


def test_query_needs_exactly_one_target() -> None:
    """Neither --store nor --url is a usage error (exit 2)."""
    r = CliRunner().invoke(cli, ["query", "SELECT 1"])
    assert r.exit_code == 2
    assert "exactly one" in r.output


def test_run_with_invalid_config_exits_2(tmp_path: Path) -> None:
    """sovtel run fails fast at start-up on an invalid configuration."""
    f = tmp_path / "bad.yaml"
    f.write_text("service: {}\n")
    r = CliRunner().invoke(cli, ["run", "-c", str(f)])
    assert r.exit_code == 2
    assert "pipelines" in r.output


def test_every_command_is_mounted() -> None:
    """The root group carries its own commands and every app module's group, under their usual names."""
    assert set(cli.commands) == {
        "run", "config", "demo", "query", "schema", "serve", "privacy", "keys", "retention", "audit", "aiact",
        "quality", "dashboards",
    }


# Each policy the configuration enforces, as (a change to a valid file, the line that must be printed).
VALID = """\
receivers:
  otlp:
    protocols:
      grpc: {enabled: false}
      http: {endpoint: "127.0.0.1:0"}
  heartbeat: {interval_s: 30}
processors:
  minimise: {}
exporters:
  clickhouse:
    path: STORE
    jurisdiction: de
service:
  country: DE
  data_dir: STATE
  telemetry: {metrics: {enabled: false}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [minimise]
      exporters: [clickhouse]
"""
POLICY_CASES = [
    # The case: a US store holding local and sovereign rows (one problem per tier).
    pytest.param("jurisdiction: de", "jurisdiction: us",
                 ["line 12: exporters.clickhouse.jurisdiction: jurisdiction 'US' is outside the operator's country",
                  "line 12: exporters.clickhouse.jurisdiction: jurisdiction 'US' is outside EU, EEA"],
                 id="jurisdiction"),
    pytest.param("processors: [minimise]", "processors: []",
                 ["line 20: service.pipelines.traces.processors: a traces pipeline must run minimise"], id="minimise"),
    pytest.param("heartbeat: {interval_s: 30}", "nvml: {simulated: true}",
                 ["line 6: receivers.nvml.simulated: a simulated receiver is for the demo and tests only"],
                 id="simulated"),
]


def config_file(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The valid configuration with one change, its store and state under ``tmp_path``."""
    text = VALID.replace("STORE", str(tmp_path / "store")).replace("STATE", str(tmp_path / "state"))
    f = tmp_path / "sovtel.yaml"
    f.write_text(text.replace(old, new) if old else text)
    return f


@pytest.mark.parametrize(("old", "new", "expected"), POLICY_CASES)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_policy_violations_exit_2_with_one_line_each(tmp_path: Path, command: str, old: str, new: str,
                                                     expected: list[str]) -> None:
    """config validate and run refuse a foreign jurisdiction, a pipeline without minimise and a simulated
    receiver: exit 2, one line naming file, line, YAML path and the problem."""
    f = config_file(tmp_path, old, new)
    args = ["config", "validate", str(f)] if command == "validate" else ["run", "-c", str(f)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    problems = [x for x in lines if x.startswith(f"{f}: line")]
    assert len(problems) == len(expected) and lines[-1] == f"{f}: {len(expected)} error(s)", lines
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(f"{f}: {start}"), problem
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_the_valid_file_passes() -> None:
    """The configuration the policy cases start from is itself valid (each case changes one thing)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        r = CliRunner().invoke(cli, ["config", "validate", str(config_file(Path(tmp)))])
    assert r.exit_code == 0, r.output


def test_run_refuses_an_opt_out_it_cannot_record(tmp_path: Path, chdb_dsn: str, unique_db: str) -> None:
    """An opt-out from minimisation with no ledger to record it in (migrate: false, empty store) exits 1, one line."""
    f = config_file(tmp_path)
    text = f.read_text().replace(f"    path: {tmp_path / 'store'}\n", "").replace("    jurisdiction: de\n", (
        f"    dsn: {chdb_dsn}\n    database: {unique_db}\n    aiact_database: {unique_db}_aiact\n    migrate: false\n"
    )).replace("      processors: [minimise]\n", "      processors: []\n      unminimised: test of the delivery path\n")
    f.write_text(text)
    r = CliRunner().invoke(cli, ["run", "-c", str(f)])
    assert r.exit_code == 1, r.output
    assert r.output.splitlines() == [
        f"sovtel: chdb://{chdb_dsn.removeprefix('chdb://')}: no AI-Act ledger {unique_db}_aiact.ledger to record "
        "the opt-out of pipeline traces (run sovtel schema migrate)"]


def test_run_records_an_opt_out_in_the_ledger(tmp_path: Path) -> None:
    """sovtel run with unminimised: <reason> appends the reason to the AI-Act ledger before it serves, and warns."""
    from retention.ledger import Ledger
    from storage.backend import open_store
    from tests.waiting import wait_until

    f = config_file(tmp_path, "      processors: [minimise]\n",
                    "      processors: []\n      unminimised: test of the delivery path\n")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "run", "-c", str(f)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            assert wait_until(lambda: "sovtel: running" in log.read_text() or proc.poll() is not None, 90)
            assert proc.poll() is None, log.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    output = log.read_text()
    assert "WARNING sovtel.cli: pipeline traces runs unminimised (test of the delivery path); recorded as " \
           "aiact.ledger seq 1" in output, output
    store = open_store({"path": str(tmp_path / "store")})
    try:
        entries = [e for e in Ledger(store, "aiact").entries() if e.action == "config.unminimised"]
    finally:
        store.close()
    assert len(entries) == 1 and entries[0].actor == "sovtel run"
    payload = json.loads(entries[0].payload)
    assert payload["pipeline"] == "traces" and payload["reason"] == "test of the delivery path"
    assert payload["processors"] == [] and payload["config"] == str(f)
