"""Exporter type ``clickhouse``: writes each batch into its signal's table of one tier database,
in the embedded store (default ``<data_dir>/store``) or on a ClickHouse server.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from sovtel.component import ComponentConfig, ComponentContext, ExportResult
from sovtel.queue import QueueConfig, dedup_token
from sovtel.records import TABLES, Batch
from storage.backend import PermanentStoreError, Store, StoreConfig, StoreError, StoreLocation
from storage.cluster import ClusterConfig
from storage.migrate import MigrationError, SchemaSettings, migrate

log = logging.getLogger("sovtel.storage.clickhouse")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PERSONAL_DAYS_MIN = 30
PERSONAL_DAYS_MAX = 90

class RetentionConfig(ComponentConfig):
    """How long each kind of table keeps rows, applied as table TTLs when the schema is created."""

    personal_days: int = Field(default=30, ge=1, description="spans, logs, token_usage: 30-90 days.")
    operational_days: int = Field(default=395, ge=1, description="metrics, gpu_metrics, pipeline_health.")
    aiact_years: int = Field(default=10, ge=10, description="AI-Act documentation (Art. 18: ten years).")
    override_reason: str | None = Field(
        default=None, description="Why personal_days is outside 30-90 (kept in the config for audit)."
    )

    @model_validator(mode="after")
    def _personal_window(self) -> RetentionConfig:
        inside = PERSONAL_DAYS_MIN <= self.personal_days <= PERSONAL_DAYS_MAX
        if not inside and not (self.override_reason and self.override_reason.strip()):
            raise ValueError(
                f"personal_days must be between {PERSONAL_DAYS_MIN} and {PERSONAL_DAYS_MAX} "
                f"(got {self.personal_days}); set override_reason to document a deliberate exception"
            )
        return self


class Config(StoreLocation, ComponentConfig):
    """The ``clickhouse`` exporter: where the store is, which databases, retention and batching.

    Give at most one of ``path``, ``dsn`` or ``host``; none means the embedded store under the
    service's ``data_dir``.
    """

    database: str = Field(default="sovtel", description="The tier database the batches go to.")
    aiact_database: str = Field(default="aiact", description="The shared AI-Act database.")
    migrate: bool = Field(default=True, description="Create or upgrade the schema at start-up.")
    retention: RetentionConfig = RetentionConfig()
    queue: QueueConfig = QueueConfig()
    jurisdiction: str | None = Field(
        default=None, description="Where the store is under law: an ISO 3166-1 alpha-2 code, or EU / EEA; checked "
        "against the tiers it permits, shown in routing errors and logs."
    )
    tiers: list[str] | None = Field(
        default=None,
        description="Sovereignty tiers this sink may receive. Required for a server; the embedded store on the "
        "node permits every tier when unset.",
    )
    cluster: ClusterConfig | None = Field(default=None, description="Create the schema for a ClickHouse cluster.")

    @field_validator("database", "aiact_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @model_validator(mode="after")
    def _location(self) -> Config:
        problems = self.location_problems(require=False)
        if self.database == self.aiact_database:
            problems.append("database and aiact_database must differ")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def store_config(self, data_dir: Path) -> StoreConfig:
        """The store this exporter writes to (the embedded default lives under ``data_dir``)."""
        fields = {name: getattr(self, name) for name in StoreLocation.model_fields}
        if self.path is None and self.dsn is None and self.host is None:
            fields["path"] = data_dir / "store"
        return StoreConfig(**fields)

    def schema_settings(self) -> SchemaSettings:
        """The migration placeholders this configuration implies."""
        return SchemaSettings(
            database=self.database,
            aiact_database=self.aiact_database,
            personal_ttl_days=self.retention.personal_days,
            operational_ttl_days=self.retention.operational_days,
            aiact_ttl_years=self.retention.aiact_years,
            cluster=self.cluster.name if self.cluster is not None else None,
            engine_prefix="Replicated" if self.cluster is not None and self.cluster.replicated else "",
        )


def validate_config(cfg: Config) -> list[str]:
    """Problems a field validator cannot see: sink tiers (a server must declare them) and names."""
    from sovtel.routing import check_tiers

    problems: list[str] = []
    if cfg.tiers is not None:
        problems.extend(check_tiers(cfg.tiers, "tiers"))
        if not cfg.tiers:
            problems.append("tiers: a sink must permit at least one tier")
    elif cfg.host is not None or (cfg.dsn is not None and not cfg.embedded):
        problems.append(
            f"tiers: a ClickHouse server sink ({cfg.describe()}) must declare the tiers it permits "
            "(and its jurisdiction), e.g. tiers: [sovereign]; only the node's embedded store defaults to all tiers"
        )
    return problems


class StartupError(Exception):
    """The exporter cannot start: the store is unusable or its schema cannot be brought up to date."""


class ClickHouseExporter:
    """Inserts batches as Arrow into ``{database}.{spans|logs|metrics}``.

    ``start`` and ``shutdown`` run on the service's thread, ``export`` on the exporter's worker
    thread only; the store serialises them. Counting sent, failed and dropped rows is left to the
    pipeline's queue, which owns retries and already counts under this component's name.
    """

    def __init__(self, ctx: ComponentContext, config: Config) -> None:
        self.ctx = ctx
        self.config = config
        self.store_config = config.store_config(ctx.data_dir)
        self._store: Store | None = None

    @property
    def store(self) -> Store | None:
        """The open store, once started."""
        return self._store

    def start(self) -> None:
        """Open the store and migrate the schema; raises ``StartupError`` saying why if unusable.

        With ``migrate: false`` an unreachable server is not fatal (rows queue and are retried),
        but a reachable one must already have the tables.
        """
        if self._store is not None:
            return
        where = f"clickhouse exporter {self.ctx.name} ({self.store_config.describe()})"
        store = Store.from_config(self.store_config, self.ctx.resolve_secret)
        try:
            if self.config.migrate:
                report = migrate(store, self.config.schema_settings())
                if report.applied:
                    log.info("%s: applied migrations %s", where, ", ".join(report.applied))
                if report.unknown:
                    log.warning("%s: the store has newer migrations than this release: %s", where, report.unknown)
            else:
                self._check_tables(store)
        except MigrationError as exc:
            store.close()
            raise StartupError(f"{where}: schema migration failed: {exc}") from exc
        except StoreError as exc:
            if not self.config.migrate and exc.retryable:
                log.warning("%s: store not reachable at start-up (%s); batches will be retried", where, exc)
            else:
                store.close()
                raise StartupError(f"{where}: store unusable: {exc}") from exc
        self._store = store

    def _check_tables(self, store: Store) -> None:
        missing = [
            name
            for name in TABLES.values()
            if not store.query_rows(
                "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String}",
                {"db": self.config.database, "name": name},
            )[0][0]
        ]
        if missing:
            raise PermanentStoreError(
                f"database {self.config.database} lacks table(s) {', '.join(missing)}; "
                "run 'sovtel schema migrate' or set migrate: true"
            )

    def export(self, batch: Batch) -> ExportResult:
        """Insert one batch; SUCCESS, RETRYABLE (store unreachable, overloaded) or PERMANENT (rejected)."""
        if batch.rows == 0:
            return ExportResult.SUCCESS
        store = self._store
        if store is None:
            log.error("clickhouse exporter %s: export before start; the batch will be retried", self.ctx.name)
            return ExportResult.RETRYABLE
        table = f"{self.config.database}.{TABLES[batch.signal]}"
        try:
            # The durable queue hands along the token it committed with the group, so a replay
            # is named as the first attempt was without serialising the rows again.
            store.insert_arrow(table, batch.table, dedup_token=dedup_token(batch))
        except StoreError as exc:
            if exc.retryable:
                log.warning("clickhouse exporter %s: insert into %s failed, will retry: %s", self.ctx.name, table, exc)
                return ExportResult.RETRYABLE
            log.error("clickhouse exporter %s: %s rejected %d rows (code %s): %s",
                      self.ctx.name, table, batch.rows, exc.code, exc)
            return ExportResult.PERMANENT
        except Exception:  # the contract: never raise into the pipeline; the queue keeps the batch
            log.exception("clickhouse exporter %s: unexpected failure inserting into %s", self.ctx.name, table)
            return ExportResult.RETRYABLE
        return ExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the store; idempotent and safe without start."""
        store, self._store = self._store, None
        if store is not None:
            store.close()


def create(ctx: ComponentContext, config: Config) -> ClickHouseExporter:
    """The component factory the runtime calls."""
    return ClickHouseExporter(ctx, config)
