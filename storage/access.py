"""Access control for a ClickHouse server deployment, as generated SQL: roles, grants and row policies by tier.

Applies to ClickHouse servers only: the embedded chDB engine has no SQL users, roles or row
policies (it answers "Not enough privileges"), so there access is the file system's. Print it with
``sovtel schema access --print`` and run it as an administrator (``clickhouse-client --multiquery``).

Roles: the collector may only INSERT telemetry; SRE reads operational tables; compliance reads the
AI-Act store (audit results, ledger) and routing-relevant aggregates; ML reads quality tables; the
retention job alone may delete (``ALTER DELETE``, which also covers ``DROP PARTITION`` and lightweight ``DELETE``) —
and it is the only role with any write or delete right on the AI-Act store. Row policies limit
per-tier readers to their tier's rows; the roles with a full view get an explicit all-rows policy,
because once a table has a row policy ClickHouse shows nothing to roles without one.
"""

from __future__ import annotations

from sovtel.routing import TIERS
from storage.migrate import SchemaSettings

PREFIX = "sovtel"
COLLECTOR, SRE, COMPLIANCE, ML, RETENTION = (f"{PREFIX}_{r}" for r in ("collector", "sre", "compliance", "ml",
                                                                       "retention"))
ROLES: tuple[str, ...] = (COLLECTOR, SRE, COMPLIANCE, ML, RETENTION)

# Tier-database tables by who reads them.
TELEMETRY_TABLES: tuple[str, ...] = ("spans", "logs", "metrics")
OPERATIONAL_TABLES: tuple[str, ...] = (
    "metrics", "gpu_metrics", "pipeline_health", "token_usage", "genai_histograms", "gpu_request_attribution",
)
QUALITY_TABLES: tuple[str, ...] = ("quality_scores", "quality_rates", "quality_drift", "quality_comparisons")
COMPLIANCE_TIER_TABLES: tuple[str, ...] = ("privacy_budget", "token_usage")
AIACT_TABLES: tuple[str, ...] = (
    "model_versions", "evaluations", "usage_daily", "incidents", "ledger", "audit_results",
)
# Tables with a tier column, which get row policies.
TIERED_TABLES: tuple[str, ...] = ("spans", "logs", "metrics", "token_usage", "genai_histograms")


def tier_reader(tier: str) -> str:
    """The role that reads one tier's personal telemetry."""
    return f"{PREFIX}_reader_{tier}"


def access_statements(settings: SchemaSettings | None = None) -> list[str]:
    """The roles, grants and row policies for ``settings``' databases (and cluster), in order."""
    s = settings or SchemaSettings()
    problems = s.problems()
    if problems:
        raise ValueError("; ".join(problems))
    oc = f" ON CLUSTER {s.cluster}" if s.cluster else ""
    db, ai = s.database, s.aiact_database
    readers = [tier_reader(t) for t in TIERS]
    out: list[str] = [f"CREATE ROLE IF NOT EXISTS {role}{oc}" for role in (*ROLES, *readers)]

    def grant(privileges: str, tables: tuple[str, ...], database: str, role: str) -> None:
        out.extend(f"GRANT{oc} {privileges} ON {database}.{t} TO {role}" for t in tables)

    # Collector: write telemetry, nothing else (DESCRIBE before an insert needs SHOW COLUMNS).
    grant("INSERT, SHOW COLUMNS", (*TELEMETRY_TABLES, "gpu_metrics", "pipeline_health", "quality_scores"), db,
          COLLECTOR)
    grant("SELECT", OPERATIONAL_TABLES, db, SRE)
    grant("SELECT", QUALITY_TABLES, db, ML)
    grant("SELECT", AIACT_TABLES, ai, COMPLIANCE)
    grant("SELECT", COMPLIANCE_TIER_TABLES, db, COMPLIANCE)
    grant("SELECT", TELEMETRY_TABLES, db, COMPLIANCE)
    for reader in readers:
        grant("SELECT", TELEMETRY_TABLES, db, reader)
    # Retention: TTL enforcement, erasure by data subject, AI-Act ledger entries and expiry.
    grant("SELECT, ALTER DELETE, ALTER MATERIALIZE TTL",
          (*TELEMETRY_TABLES, "token_usage", "quality_scores"), db, RETENTION)
    grant("SELECT, INSERT, ALTER DELETE", AIACT_TABLES, ai, RETENTION)

    # Row policies: a tier reader sees its tier's rows only; full-view roles see every row.
    full_view = {
        "spans": (COMPLIANCE, RETENTION), "logs": (COMPLIANCE, RETENTION), "metrics": (SRE, COMPLIANCE, RETENTION),
        "token_usage": (SRE, COMPLIANCE, RETENTION), "genai_histograms": (SRE,),
    }
    for table in TIERED_TABLES:
        if table in TELEMETRY_TABLES:
            for tier in TIERS:
                out.append(
                    f"CREATE ROW POLICY IF NOT EXISTS {PREFIX}_{table}_{tier} ON {db}.{table}{oc} "
                    f"AS PERMISSIVE FOR SELECT USING tier = '{tier}' TO {tier_reader(tier)}"
                )
        out.append(
            f"CREATE ROW POLICY IF NOT EXISTS {PREFIX}_{table}_all ON {db}.{table}{oc} "
            f"AS PERMISSIVE FOR SELECT USING 1 TO {', '.join(full_view[table])}"
        )
    return out


def render_access(settings: SchemaSettings | None = None) -> str:
    """``access_statements`` as a script."""
    header = ("-- sovtel access control for ClickHouse servers (chDB has no SQL users or roles).\n"
              "-- Assign roles to users yourself, e.g.: GRANT sovtel_collector TO collector_node_01;\n")
    return header + "\n".join(f"{s};" for s in access_statements(settings)) + "\n"
