"""Tests for app.cli: exit codes and messages people see."""

from __future__ import annotations

from pathlib import Path

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
