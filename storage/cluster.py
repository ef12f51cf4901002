"""Cluster mode: the schema rendered for a ClickHouse cluster (``ON CLUSTER``, Replicated engines,
optional Distributed tables), from the same migration files as a single node.

Replicated engines take their ZooKeeper/Keeper path from the server's ``default_replica_path`` and
``default_replica_name`` settings (``/clickhouse/tables/{uuid}/{shard}`` and ``{replica}`` by
default), so the DDL carries no per-host values and one rendering serves every node.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from sovtel.component import ComponentConfig
from storage.migrate import Migration, SchemaSettings, load_migrations, render

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS ([A-Za-z_]\w*)\.([A-Za-z_]\w*)", re.MULTILINE)
DISTRIBUTED_SUFFIX = "_all"


class ClusterConfig(ComponentConfig):
    """How the schema is laid out on a ClickHouse cluster."""

    name: str = Field(description="The cluster name in the servers' remote_servers configuration.")
    replicated: bool = Field(default=True, description="Use Replicated*MergeTree engines (replicas per shard).")
    distributed: bool = Field(
        default=False,
        description="Also create a Distributed table <table>_all over each tier table, for reads across shards.",
    )
    sharding_key: str = Field(default="rand()", description="Sharding expression of the Distributed tables.")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @field_validator("sharding_key")
    @classmethod
    def _no_statement_breaks(cls, value: str) -> str:
        if ";" in value or "--" in value or not value.strip():
            raise ValueError("must be a single ClickHouse expression")
        return value


def cluster_settings(settings: SchemaSettings, cluster: ClusterConfig) -> SchemaSettings:
    """``settings`` with the cluster's ``ON CLUSTER`` and engine prefix filled in."""
    return SchemaSettings(
        database=settings.database,
        aiact_database=settings.aiact_database,
        personal_ttl_days=settings.personal_ttl_days,
        operational_ttl_days=settings.operational_ttl_days,
        aiact_ttl_years=settings.aiact_ttl_years,
        cluster=cluster.name,
        engine_prefix="Replicated" if cluster.replicated else "",
    )


def distributed_statements(
    settings: SchemaSettings, cluster: ClusterConfig, migrations: list[Migration] | None = None
) -> list[str]:
    """``CREATE TABLE <t>_all ... ENGINE = Distributed(...)`` over every table the tier migrations create."""
    migs = migrations if migrations is not None else load_migrations()
    tables: list[str] = []
    for mig in migs:
        if mig.target != "tier":
            continue
        for stmt in mig.statements(settings):
            for db, table in _CREATE_TABLE.findall(stmt):
                if db == settings.database and table not in tables:
                    tables.append(table)
    return [
        f"CREATE TABLE IF NOT EXISTS {settings.database}.{t}{DISTRIBUTED_SUFFIX} ON CLUSTER {cluster.name} "
        f"AS {settings.database}.{t} "
        f"ENGINE = Distributed({cluster.name}, {settings.database}, {t}, {cluster.sharding_key})"
        for t in tables
    ]


def render_cluster(settings: SchemaSettings, cluster: ClusterConfig, include_aiact: bool = True) -> str:
    """The full schema for ``cluster`` as SQL text, for review or a DBA (nothing is executed)."""
    full = cluster_settings(settings, cluster)
    text = render(full, include_aiact=include_aiact)
    if cluster.distributed:
        extra = distributed_statements(full, cluster)
        text += "\n-- Distributed tables over the tier tables\n" + "\n\n".join(f"{s};" for s in extra) + "\n"
    return text


def split_statements(sql: str) -> list[str]:
    """Statements of a rendered script (``;`` at a line end; ``--`` comment lines dropped)."""
    out: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip().removesuffix(";").strip()
            if stmt:
                out.append(stmt)
            current = []
    return out
