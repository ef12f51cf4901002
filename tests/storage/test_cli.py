"""`sovtel schema migrate`: applies idempotently, prints SQL on --dry-run, and exits 1/2 on failure/bad input."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from app.store import schema_group, store_from_url
from storage.migrate import load_migrations


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(schema_group, ["migrate", *args], env=env)


class TestSchemaMigrate:
    def test_is_a_click_group_named_schema(self):
        """The lead mounts `schema_group` into the sovtel CLI as `schema`."""
        assert isinstance(schema_group, click.Group)
        assert schema_group.name == "schema"
        assert "migrate" in schema_group.commands

    def test_applies_then_skips(self, chdb_dir, keepalive_store, unique_db):
        """The first run lists applied migrations; the second applies nothing and lists them as skipped."""
        args = ("--store", str(chdb_dir), "--database", unique_db, "--aiact-database", f"{unique_db}_a")
        first = _run(*args)
        assert first.exit_code == 0, first.output
        assert f"applied  0001_telemetry_tables@{unique_db}" in first.output
        assert f"applied  0004_aiact_tables@{unique_db}_a" in first.output
        second = _run(*args)
        assert second.exit_code == 0, second.output
        assert "applied  " not in second.output
        assert f"0 applied, {len(load_migrations())} already up to date" in second.output

    def test_dry_run_prints_sql_without_a_store(self):
        """--dry-run prints the rendered SQL and needs no store."""
        result = _run("--dry-run", "--database", "local", "--personal-days", "60")
        assert result.exit_code == 0, result.output
        assert "CREATE TABLE IF NOT EXISTS local.spans" in result.output
        assert "INTERVAL 60 DAY" in result.output

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((), "exactly one of --store DIR or --url URL"),
            (("--store", "x", "--url", "http://127.0.0.1:1"), "exactly one of --store DIR or --url URL"),
            (("--dry-run", "--personal-days", "7"), "between 30 and 90"),
            (("--dry-run", "--database", "a-b"), "plain identifier"),
            (("--store", "x", "--user", "admin"), "only apply to --url"),
        ],
    )
    def test_bad_input_exits_2(self, args, message):
        """Missing or contradictory options and out-of-policy retention exit 2 with a message."""
        result = _run(*args)
        assert result.exit_code == 2
        assert message in result.output

    def test_retention_override_with_reason_is_accepted(self):
        """--personal-days outside 30-90 works when --override-reason says why."""
        result = _run("--dry-run", "--personal-days", "7", "--override-reason", "short-lived test tier")
        assert result.exit_code == 0
        assert "INTERVAL 7 DAY" in result.output

    def test_unreachable_url_exits_1(self, closed_port):
        """A server that cannot be reached is a run-time failure (exit 1) naming the target."""
        result = _run("--url", f"http://admin:pw@127.0.0.1:{closed_port}")
        assert result.exit_code == 1
        assert f"127.0.0.1:{closed_port}" in result.output
        assert "pw" not in result.output.replace("http", "")

    def test_password_env_must_exist(self, closed_port):
        """--password-env naming an unset variable is bad input."""
        result = _run("--url", f"http://127.0.0.1:{closed_port}", "--password-env", "SOVTEL_TEST_UNSET_VAR")
        assert result.exit_code == 2
        assert "SOVTEL_TEST_UNSET_VAR" in result.output


class TestStoreFromUrl:
    @pytest.mark.parametrize(
        ("url", "target"),
        [
            ("http://127.0.0.1", "http://127.0.0.1:8123"),
            ("https://reader@ch.example", "https://ch.example:8443"),
            ("https://ch.example:9440", "https://ch.example:9440"),
        ],
    )
    def test_defaults_ports_by_scheme(self, url, target):
        """The port defaults to 8123 for http and 8443 for https; no connection is made."""
        assert store_from_url(url).target == target

    @pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8123", "http://"])
    def test_rejects_non_http_urls(self, url):
        """Only http(s) URLs with a host are accepted."""
        with pytest.raises(click.BadParameter):
            store_from_url(url)
