"""The clickhouse exporter: config validation, start-up, export outcomes and replay safety."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from sovtel.component import ComponentContext, Exporter, ExportResult
from sovtel.config import component_module
from sovtel.queue import DEDUP_TOKEN, QueuedExporter, QueueSettings, dedup_token, queue_config
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from storage.clickhouse import ClickHouseExporter, Config, StartupError, create


def _ctx(name: str = "clickhouse", data_dir: Path | None = None) -> ComponentContext:
    ctx = ComponentContext(name=name, telemetry=Telemetry().component(name))
    if data_dir is not None:
        ctx.data_dir = data_dir
    return ctx


@pytest.fixture
def exporter_for(chdb_dsn, keepalive_store):
    """Build an exporter on the shared embedded store; shuts every one down afterwards."""
    made: list[ClickHouseExporter] = []

    def build(**fields) -> ClickHouseExporter:
        fields.setdefault("dsn", chdb_dsn)
        exporter = create(_ctx(), Config(**fields))
        made.append(exporter)
        return exporter

    yield build
    for exporter in made:
        exporter.shutdown()


class TestConfig:
    def test_defaults(self):
        """Defaults: sovtel/aiact databases, migrate on, 30/395-day retention, 20000/1.0/500000 queue."""
        cfg = Config()
        assert (cfg.database, cfg.aiact_database, cfg.migrate) == ("sovtel", "aiact", True)
        assert (cfg.retention.personal_days, cfg.retention.operational_days, cfg.retention.aiact_years) == (30, 395, 10)
        assert (cfg.queue.batch_rows, cfg.queue.max_delay_s, cfg.queue.max_queue_rows) == (20_000, 1.0, 500_000)

    def test_pipeline_reads_the_queue_settings(self):
        """The runtime's queue settings come from the exporter's queue section."""
        cfg = Config(queue={"batch_rows": 5000, "max_delay_s": 0.2, "max_queue_rows": 100_000})
        expected = QueueSettings(batch_rows=5000, max_delay_s=0.2, max_queue_rows=100_000)
        assert QueueSettings.of(queue_config(cfg)) == expected

    @pytest.mark.parametrize("days", [29, 91, 7, 365])
    def test_personal_retention_outside_30_to_90_needs_a_reason(self, days):
        """Personal retention outside 30-90 days is refused unless override_reason documents why."""
        with pytest.raises(ValidationError, match="between 30 and 90"):
            Config(retention={"personal_days": days})
        cfg = Config(retention={"personal_days": days, "override_reason": "DPA ticket 1234"})
        assert cfg.schema_settings().personal_ttl_days == days

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"host": "ch.example", "password": "hunter2"}, "by reference only"),
            ({"path": "/srv/store", "host": "ch.example"}, "exactly one of path, dsn or host"),
            ({"database": "bad-name"}, "plain identifier"),
            ({"database": "x", "aiact_database": "x"}, "must differ"),
            ({"retention": {"aiact_years": 5}}, "greater than or equal to 10"),
            ({"queue": {"batch_rows": 10, "max_queue_rows": 5}}, "at least batch_rows"),
            ({"tables": "spans"}, "Extra inputs"),
        ],
    )
    def test_rejects_bad_configs(self, fields, message):
        """Literal passwords, two locations, bad names, short AI-Act retention and unknown keys are refused."""
        with pytest.raises(ValidationError, match=message):
            Config(**fields)

    def test_embedded_store_defaults_under_data_dir(self, tmp_path):
        """With no location the exporter uses the embedded store in <data_dir>/store."""
        assert Config().store_config(tmp_path).path == tmp_path / "store"
        assert Config(host="ch.example").store_config(tmp_path).path is None

    def test_is_found_as_component_type_clickhouse(self):
        """The runtime finds the exporter as type `clickhouse` and validates its section."""
        module = component_module("exporters", "clickhouse")
        assert module.Config is Config
        assert module.create is create
        section = {"path": "/srv/sovtel", "database": "local", "queue": {"batch_rows": 20_000}}
        cfg = module.Config.model_validate(section)
        assert cfg.store_config(Path("/unused")).describe() == "chdb:///srv/sovtel"


class TestExport:
    def test_is_an_exporter(self, exporter_for, unique_db):
        """The component satisfies the Exporter protocol."""
        assert isinstance(exporter_for(database=unique_db, aiact_database=f"{unique_db}_a"), Exporter)

    def test_start_migrates_and_export_stores_every_signal(self, exporter_for, unique_db, span_factory, ts):
        """After start, spans, logs and metrics land in their tables and the result is SUCCESS."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()
        batches = [
            Batch(Signal.TRACES, span_factory(120)),
            Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {"timestamp": ts(7), "body": ["hello"] * 7})),
            Batch(Signal.METRICS, table_from_columns(Signal.METRICS, {"timestamp": ts(5), "value": [1.0] * 5})),
        ]
        assert [exporter.export(b) for b in batches] == [ExportResult.SUCCESS] * 3
        store = exporter.store
        assert store is not None
        counts = [store.query_rows(f"SELECT count() FROM {unique_db}.{t}")[0][0] for t in ("spans", "logs", "metrics")]
        assert counts == [120, 7, 5]

    def test_replayed_batch_is_stored_once(self, exporter_for, unique_db, span_factory):
        """Exporting the same batch again (a retry after an unclear failure) adds no rows."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()
        batch = Batch(Signal.TRACES, span_factory(250, seed=8))
        for _ in range(3):
            assert exporter.export(batch) is ExportResult.SUCCESS
        assert exporter.export(Batch(Signal.TRACES, span_factory(10, seed=9))) is ExportResult.SUCCESS
        assert exporter.store is not None
        assert exporter.store.query_rows(f"SELECT count() FROM {unique_db}.spans") == [(260,)]

    def test_inserts_under_the_token_its_queue_hands_along(self, exporter_for, unique_db, span_factory):
        """A token in the batch meta (the durable queue's) is the one inserted: a replay under it adds no rows."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()
        table = span_factory(40, seed=11)
        first = Batch(Signal.TRACES, table, {DEDUP_TOKEN: "sovtel-traces-claimed-group-1"})
        # The same rows re-chunked would hash to the same rows token; a queue token must win over it.
        replay = Batch(Signal.TRACES, table.slice(0, 39), {DEDUP_TOKEN: "sovtel-traces-claimed-group-1"})
        assert exporter.export(first) is ExportResult.SUCCESS
        assert exporter.export(replay) is ExportResult.SUCCESS
        assert exporter.store is not None
        assert exporter.store.query_rows(f"SELECT count() FROM {unique_db}.spans") == [(40,)]

    def test_empty_batch_is_success_without_a_call(self, exporter_for, unique_db):
        """A zero-row batch succeeds trivially."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()
        assert exporter.export(Batch(Signal.LOGS, table_from_columns(Signal.LOGS, {}))) is ExportResult.SUCCESS

    def test_wrong_table_schema_is_permanent(self, exporter_for, store, unique_db, span_factory):
        """A table whose columns do not fit the batch rejects it for good: PERMANENT, not retried."""
        store.command(f"CREATE DATABASE {unique_db}")
        for table in ("spans", "logs", "metrics"):
            store.command(f"CREATE TABLE {unique_db}.{table} (timestamp DateTime64(9, 'UTC'), trace_id UInt64) "
                          "ENGINE = MergeTree ORDER BY timestamp")
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a", migrate=False)
        exporter.start()
        assert exporter.export(Batch(Signal.TRACES, span_factory(5))) is ExportResult.PERMANENT

    def test_mistyped_batch_is_permanent(self, exporter_for, unique_db, ts):
        """A batch whose values do not fit the columns is PERMANENT (never coerced into wrong data)."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()
        bad = pa.table({"timestamp": ts(2), "severity_number": pa.array(["high", "low"])})
        assert exporter.export(Batch(Signal.LOGS, bad)) is ExportResult.PERMANENT

    def test_unreachable_server_is_retryable(self, closed_port):
        """With the server down, export answers RETRYABLE so the queue keeps the batch."""
        exporter = create(_ctx(), Config(host="127.0.0.1", port=closed_port, migrate=False, connect_timeout_s=1))
        exporter.start()  # migrate: false tolerates an unreachable server at start-up
        batch = Batch(Signal.TRACES, table_from_columns(Signal.TRACES, {"span_id": ["a"]}))
        assert exporter.export(batch) is ExportResult.RETRYABLE
        exporter.shutdown()

    def test_export_never_raises(self, exporter_for, unique_db):
        """Even an unexpected failure comes back as a result, not an exception."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.start()

        class Boom:
            num_rows = 1

            def __getattr__(self, name):
                raise RuntimeError("not a table")

        assert exporter.export(Batch(Signal.TRACES, Boom())) is ExportResult.RETRYABLE  # type: ignore[arg-type]


class TestLifecycle:
    def test_unreachable_server_fails_start_when_migrating(self, closed_port):
        """start() raises a clear StartupError when the schema cannot be migrated."""
        exporter = create(_ctx("clickhouse/eu"), Config(host="127.0.0.1", port=closed_port, connect_timeout_s=1))
        with pytest.raises(StartupError, match=rf"clickhouse exporter clickhouse/eu \(http://127.0.0.1:{closed_port}\)"):
            exporter.start()

    def test_missing_tables_fail_start_without_migrate(self, exporter_for, store, unique_db):
        """With migrate: false, a reachable store without the tables fails start-up and says what to run."""
        store.command(f"CREATE DATABASE {unique_db}")
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a", migrate=False)
        with pytest.raises(StartupError, match="sovtel schema migrate"):
            exporter.start()

    def test_shutdown_is_idempotent_and_safe_without_start(self, exporter_for, unique_db, span_factory):
        """shutdown() before start, twice, and export after it are all harmless."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        exporter.shutdown()
        exporter.start()
        exporter.shutdown()
        exporter.shutdown()
        assert exporter.export(Batch(Signal.TRACES, span_factory(1))) is ExportResult.RETRYABLE

    def test_runs_behind_the_pipeline_queue(self, exporter_for, unique_db, span_factory):
        """Behind QueuedExporter, small batches are merged, inserted, and counted as sent."""
        exporter = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        telemetry = Telemetry()
        queue = QueuedExporter("clickhouse", exporter, telemetry.component("clickhouse"),
                               QueueSettings(batch_rows=1000, max_delay_s=0.05))
        queue.start()
        for seed in range(12):
            queue.enqueue(Batch(Signal.TRACES, span_factory(100, seed=100 + seed)))
        assert queue.flush(30)
        queue.shutdown()
        assert telemetry.total("sovtel_sent_records_total", component="clickhouse") == 1200
        reopened = exporter_for(database=unique_db, aiact_database=f"{unique_db}_a")
        reopened.start()
        assert reopened.store is not None
        assert reopened.store.query_rows(f"SELECT count() FROM {unique_db}.spans") == [(1200,)]


class TestDedupToken:
    def test_same_rows_same_token_whatever_the_chunking(self, span_factory):
        """Re-chunked or merged copies of the same rows give the same token."""
        table = span_factory(500, seed=1)
        merged = pa.concat_tables([table.slice(0, 3), table.slice(3, 200), table.slice(203)])
        assert dedup_token(Batch(Signal.TRACES, table)) == dedup_token(Batch(Signal.TRACES, merged))

    def test_different_rows_or_signals_give_different_tokens(self, span_factory, ts):
        """A different span, a different row count or another signal changes the token."""
        a = span_factory(50, seed=1)
        tokens = {
            dedup_token(Batch(Signal.TRACES, a)),
            dedup_token(Batch(Signal.TRACES, a.slice(0, 49))),
            dedup_token(Batch(Signal.TRACES, span_factory(50, seed=2))),
        }
        logs = table_from_columns(Signal.LOGS, {"timestamp": ts(2, start=0), "body": ["a", "b"]})
        logs2 = table_from_columns(Signal.LOGS, {"timestamp": ts(2, start=0), "body": ["a", "c"]})
        tokens |= {dedup_token(Batch(Signal.LOGS, logs)), dedup_token(Batch(Signal.LOGS, logs2))}
        assert len(tokens) == 5
