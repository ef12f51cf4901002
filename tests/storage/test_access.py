"""Access-control SQL for ClickHouse servers: roles, grants and row policies by tier, checked by the parser."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from app.cli import cli
from storage.access import COLLECTOR, RETENTION, ROLES, access_statements, tier_reader
from storage.migrate import SchemaSettings


def parse(store, statement: str) -> str:  # type: ignore[no-untyped-def]
    return str(store.query_rows("SELECT formatQuery({q:String})", {"q": statement})[0][0])


@pytest.mark.parametrize("cluster", [None, "prod"])
def test_every_access_statement_parses(store, cluster: str | None) -> None:  # type: ignore[no-untyped-def]
    """ClickHouse's parser accepts every generated role, grant and row policy statement."""
    statements = access_statements(SchemaSettings(cluster=cluster))
    for stmt in statements:
        formatted = parse(store, stmt)
        if cluster:
            assert "ON CLUSTER prod" in formatted


def grants(role: str) -> list[str]:
    return [s for s in access_statements() if s.startswith("GRANT") and s.endswith(f" TO {role}")]


def test_collector_may_only_insert() -> None:
    """The collector role holds INSERT (and SHOW COLUMNS, needed to insert) and nothing else."""
    privileges = {p.strip() for g in grants(COLLECTOR) for p in re.match(r"GRANT (.+) ON ", g).group(1).split(",")}  # type: ignore[union-attr]
    assert privileges == {"INSERT", "SHOW COLUMNS"}


def test_only_the_retention_role_may_delete_from_the_aiact_store() -> None:
    """No role but retention holds a write, delete or drop privilege on the AI-Act database."""
    writes = re.compile(r"\b(INSERT|DELETE|DROP|TRUNCATE|ALTER|ALL)\b")
    offenders = [
        g for g in access_statements()
        if g.startswith("GRANT") and " ON aiact." in g and writes.search(g.split(" ON ")[0])
        and not g.endswith(f" TO {RETENTION}")
    ]
    assert offenders == []
    assert any("ALTER DELETE" in g and " ON aiact.ledger " in g for g in grants(RETENTION))


@pytest.mark.parametrize("tier", ["local", "sovereign", "public"])
def test_tier_readers_are_limited_to_their_tier(tier: str) -> None:
    """Each tier reader has a row policy on spans that admits only rows of its tier."""
    policies = [s for s in access_statements() if s.startswith("CREATE ROW POLICY") and " ON sovtel.spans " in s
                and s.endswith(f"TO {tier_reader(tier)}")]
    assert policies and all(f"USING tier = '{tier}'" in p for p in policies)


def test_roles_cover_the_documented_duties() -> None:
    """Collector, SRE, compliance, ML and retention roles are all created."""
    created = {s.split()[-1] for s in access_statements() if s.startswith("CREATE ROLE")}
    assert set(ROLES) <= created


def test_invalid_database_name_is_refused() -> None:
    """A database name that is not an identifier cannot reach the generated SQL."""
    with pytest.raises(ValueError, match="identifier"):
        access_statements(SchemaSettings(database="tel; DROP"))


def test_cli_prints_access_sql() -> None:
    """`sovtel schema access --print` prints the roles and grants."""
    result = CliRunner().invoke(cli, ["schema", "access", "--print", "--database", "tel"])
    assert result.exit_code == 0, result.output
    assert "CREATE ROLE IF NOT EXISTS sovtel_collector;" in result.output and " ON tel.spans " in result.output
