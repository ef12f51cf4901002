"""Store: configuration, Arrow round trips, dedup tokens, error classes and the chDB stale-result guard."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError
from pydantic import ValidationError

from sovtel.records import SCHEMAS, TABLES, Signal, table_from_columns
from storage.backend import (
    PermanentStoreError,
    RetryableStoreError,
    Store,
    StoreConfig,
    StoreError,
    classify_error,
    client_factory,
    open_store,
)
from storage.migrate import SchemaSettings, migrate


class TestStoreConfig:
    @pytest.mark.parametrize(
        "fields",
        [
            {},
            {"path": "/srv/store", "host": "ch.example"},
            {"dsn": "chdb:///srv/store", "host": "ch.example"},
            {"path": "/srv/store", "dsn": "chdb:///srv/store"},
        ],
    )
    def test_needs_exactly_one_location(self, fields):
        """Neither or several of path / dsn / host is a validation error."""
        with pytest.raises(ValidationError, match="exactly one of path, dsn or host"):
            StoreConfig(**fields)

    @pytest.mark.parametrize("password", ["hunter2", "env:", "vault:db/pass"])
    def test_rejects_literal_passwords(self, password):
        """A password that is not an env:/file: reference is rejected."""
        with pytest.raises(ValidationError, match="by reference only"):
            StoreConfig(host="ch.example", password=password)

    def test_rejects_password_inside_dsn(self):
        """A dsn carrying user:password is rejected: secrets go by reference."""
        with pytest.raises(ValidationError, match="must not contain a password"):
            StoreConfig(dsn="https://admin:hunter2@ch.example:8443")

    def test_rejects_server_options_for_embedded_store(self):
        """Port, credentials and TLS mean nothing to the embedded store and are flagged."""
        with pytest.raises(ValidationError, match="only apply to a server"):
            StoreConfig(path="/srv/store", port=8123, password="env:CH_PASSWORD")

    def test_rejects_unknown_keys(self):
        """Unknown keys are errors, not ignored."""
        with pytest.raises(ValidationError, match="Extra inputs"):
            StoreConfig(host="ch.example", pasword="env:X")

    @pytest.mark.parametrize(
        ("fields", "embedded", "described"),
        [
            ({"path": "/srv/store"}, True, "chdb:///srv/store"),
            ({"dsn": "chdb:///srv/store"}, True, "chdb:///srv/store"),
            ({"host": "ch.example", "password": "env:CH_PASSWORD"}, False, "http://ch.example:8123"),
            ({"host": "ch.example", "secure": True, "password": "file:/run/secrets/ch"}, False, "https://ch.example:8443"),
            ({"dsn": "https://reader@ch.example:9443/sovtel"}, False, "https://ch.example:9443/sovtel"),
        ],
    )
    def test_accepts_valid_locations(self, fields, embedded, described):
        """Valid locations say whether they are embedded and describe themselves without secrets."""
        cfg = StoreConfig(**fields)
        assert cfg.embedded is embedded
        assert cfg.describe() == described

    def test_resolves_password_through_the_resolver(self, closed_port):
        """The password reference goes through the given resolver when the client is opened."""
        asked: list[str] = []

        def resolver(ref: str) -> str:
            asked.append(ref)
            return "s3cret"

        cfg = StoreConfig(host="127.0.0.1", port=closed_port, password="env:CH_PASSWORD", connect_timeout_s=1)
        store = Store.from_config(cfg, resolver)
        with pytest.raises(RetryableStoreError):
            store.connect()
        assert asked == ["env:CH_PASSWORD"]


class TestClassifyError:
    @pytest.mark.parametrize(
        ("exc", "retryable", "code"),
        [
            (DatabaseError("Code: 252. Too many parts", code=252), True, 252),
            (DatabaseError("Code: 241. Memory limit exceeded", code=241), True, 241),
            (DatabaseError("Code: 159. Timeout exceeded", code=159), True, 159),
            (DatabaseError("Code: 62. Syntax error", code=62), False, 62),
            (DatabaseError("Code: 53. Type mismatch", code=53), False, 53),
            (DatabaseError("Code: 60. Unknown table", code=60), False, 60),
            (RuntimeError("Code: 60. DB::Exception: Unknown table expression identifier"), False, 60),
            (RuntimeError("Code: 252. DB::Exception: Too many parts"), True, 252),
            (OperationalError("Error executing HTTP request: connection refused"), True, None),
            (ConnectionRefusedError("refused"), True, None),
            (TimeoutError("timed out"), True, None),
            (ProgrammingError("The client has been closed"), False, None),
            (pa.ArrowInvalid("cannot convert"), False, None),
        ],
    )
    def test_maps_errors_to_retryable_or_permanent(self, exc, retryable, code):
        """Server codes decide by the retryable list; transport failures retry; client mistakes do not."""
        error = classify_error(exc)
        assert isinstance(error, RetryableStoreError if retryable else PermanentStoreError)
        assert error.retryable is retryable
        assert error.code == code


def _log_table(ts) -> pa.Table:
    return table_from_columns(
        Signal.LOGS,
        {
            "timestamp": ts(3),
            "observed_timestamp": ts(3, step=2_000),
            "trace_id": ["4bf92f3577b34da6a3ce929d0e0e4736", "", "ü"],
            "span_id": ["00f067aa0ba902b7", "", ""],
            "severity_number": [9, 17, 0],
            "severity_text": ["INFO", "ERROR", ""],
            "service_name": ["chat-api", "chat-api", ""],
            "node": ["gpu-node-1", "gpu-node-2", ""],
            "event_name": ["gen_ai.client.inference.operation.details", "", ""],
            "body": ["Grüße aus Köln 👋 — 東京", "", "line1\nline2\t'quoted' \"double\" \\ back"],
            "tenant_id": ["tenant-01", "", ""],
            "user_id": ["9f86d081884c7d65", "", ""],
            "key_id": ["k2026-11", "", ""],
            "tier": ["local", "sovereign", "public"],
            "pii_count": [2, 0, 65535],
            "resource_attributes": [[("service.version", "1.0"), ("host.name", "h1")], [], [("", "")]],
            "log_attributes": [[("exception.message", "ошибка")], [], [("k", "")]],
        },
    )


def _metric_table(ts) -> pa.Table:
    return table_from_columns(
        Signal.METRICS,
        {
            "timestamp": ts(3),
            "start_timestamp": ts(3, step=0),
            "service_name": ["chat-api", "chat-api", ""],
            "node": ["gpu-node-1", "", ""],
            "metric_name": ["gen_ai.client.token.usage", "gen_ai.server.request.duration", "x"],
            "metric_kind": ["histogram", "histogram", "gauge"],
            "unit": ["{token}", "s", ""],
            "is_monotonic": [False, True, False],
            "value": [0.0, 1.5, -2.25e300],
            "count": [3, 0, 2**63],
            "sum": [412.0, 0.0, 0.0],
            "bounds": [[1.0, 4.0, 16.0, 64.0], [], [0.5]],
            "bucket_counts": [[0, 1, 1, 1, 0], [], [1, 2**64 - 1]],
            "tenant_id": ["tenant-01", "", ""],
            "tier": ["public", "", ""],
            "resource_attributes": [[("service.version", "1.0")], [], []],
            "attributes": [[("gen_ai.token.type", "input"), ("gen_ai.request.model", "mistral-large-2")], [], []],
        },
    )


def _span_table(ts, span_factory) -> pa.Table:
    realistic = span_factory(3, seed=3)
    edge = table_from_columns(
        Signal.TRACES,
        {
            "timestamp": ts(3),
            "trace_id": ["", "ü" * 40, "t"],
            "span_id": ["s1", "s2", "s3"],
            "ttft_s": [None, 0.0, 1e-9],
            "finish_reasons": [[], ["stop", "length"], [""]],
            "input_messages": ["", "Grüße 👋 <PERSON_3f2a>", "\x00 nul inside"],
            "span_attributes": [[], [("ключ", "値🙂"), ("empty", "")], [("k", "v")]],
            "event_names": [[], ["gen_ai.choice", "exception"], [""]],
            "event_attributes": [[], [[("index", "0")], []], [[]]],
            "quality_scores": [[], [("faithfulness", 0.25), ("toxicity", 0.0)], []],
            "quality_labels": [[], [("verdict", "grounded")], []],
            "pii_entities": [[], [("EMAIL_ADDRESS", 2), ("PERSON", 65535)], []],
        },
    )
    return pa.concat_tables([realistic, edge])


@pytest.fixture(params=["python_table_function", "clickhouse_connect"])
def any_store(request, chdb_dsn, keepalive_store):
    """The embedded store through each insert path: chDB's Python() fast path and clickhouse-connect's."""
    cfg = StoreConfig(dsn=chdb_dsn)
    if request.param == "python_table_function":
        s = Store.from_config(cfg)
    else:
        s = Store(client_factory(cfg), embedded=True, target=cfg.describe())
    yield s
    s.close()


class TestRoundTrip:
    @pytest.mark.parametrize("signal", list(Signal))
    def test_full_schema_tables_come_back_unchanged(self, any_store, unique_db, signal, ts, span_factory):
        """Every column (maps, arrays, Nullable, list of maps, unicode, empty values) survives insert and read."""
        migrate(any_store, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact"))
        source = {
            Signal.TRACES: lambda: _span_table(ts, span_factory),
            Signal.LOGS: lambda: _log_table(ts),
            Signal.METRICS: lambda: _metric_table(ts),
        }[signal]()
        table = f"{unique_db}.{TABLES[signal]}"
        any_store.insert_arrow(table, source)
        back = any_store.query_arrow(f"SELECT * FROM {table}")
        assert back.num_rows == source.num_rows
        key = [("timestamp", "ascending"), ("service_name", "ascending")]
        assert back.cast(SCHEMAS[signal]).sort_by(key).to_pylist() == source.sort_by(key).to_pylist()


class TestDedup:
    def test_replayed_insert_with_same_token_is_skipped(self, store, schema, span_factory):
        """A second insert with the same token adds nothing; a new token adds rows."""
        table = f"{schema.database}.spans"
        batch = span_factory(500, seed=1)
        store.insert_arrow(table, batch, dedup_token="batch-1")
        store.insert_arrow(table, batch, dedup_token="batch-1")
        assert store.query_rows(f"SELECT count() FROM {table}") == [(500,)]
        store.insert_arrow(table, batch, dedup_token="batch-2")
        assert store.query_rows(f"SELECT count() FROM {table}") == [(1000,)]

    def test_replay_with_other_chunking_is_still_skipped(self, store, schema, span_factory):
        """The same rows split into different Arrow chunks dedup too (blocks follow a canonical layout)."""
        table = f"{schema.database}.spans"
        batch = span_factory(3000, seed=2)
        rechunked = pa.concat_tables([batch.slice(0, 7), batch.slice(7, 1000), batch.slice(1007)])
        store.insert_arrow(table, batch, dedup_token="same")
        store.insert_arrow(table, rechunked, dedup_token="same")
        store.insert_arrow(table, pa.Table.from_batches(batch.to_batches(max_chunksize=100)), dedup_token="same")
        assert store.query_rows(f"SELECT count() FROM {table}") == [(3000,)]

    def test_replay_does_not_double_the_token_usage_rollup(self, store, schema, span_factory):
        """A skipped replay does not reach the materialized view either."""
        batch = span_factory(400, seed=4)
        store.insert_arrow(f"{schema.database}.spans", batch, dedup_token="mv")
        store.insert_arrow(f"{schema.database}.spans", batch, dedup_token="mv")
        rows = store.query_rows(f"SELECT sum(requests), sum(input_tokens) FROM {schema.database}.token_usage")
        assert rows == [(400, sum(batch.column("input_tokens").to_pylist()))]


class TestErrors:
    @pytest.mark.parametrize(
        ("sql", "code"),
        [("SELECT * FROM nowhere_db.nothing", 81), ("SELEC 1", 62), ("SELECT 1 + 'a'", 43)],
    )
    def test_query_errors_are_permanent_with_code(self, store, sql, code):
        """Unknown objects, syntax and type errors are permanent and carry the ClickHouse code."""
        with pytest.raises(PermanentStoreError) as info:
            store.query_rows(sql)
        assert info.value.code == code

    def test_insert_into_missing_table_is_permanent(self, store, unique_db, span_factory):
        """Inserting into a table that does not exist is a permanent error."""
        store.command(f"CREATE DATABASE {unique_db}")
        with pytest.raises(PermanentStoreError) as info:
            store.insert_arrow(f"{unique_db}.spans", span_factory(3))
        assert info.value.code == 60

    def test_unreachable_server_is_retryable(self, closed_port):
        """A refused connection is a retryable error, raised from the call, not from construction."""
        store = Store.from_config(StoreConfig(host="127.0.0.1", port=closed_port, connect_timeout_s=1))
        with pytest.raises(RetryableStoreError, match=f"127.0.0.1:{closed_port}"):
            store.query_rows("SELECT 1")
        assert store.ping() is False
        store.close()

    def test_open_store_raises_for_unreachable_server(self, closed_port):
        """open_store checks the store answers before returning it."""
        with pytest.raises(StoreError) as info:
            open_store({"host": "127.0.0.1", "port": closed_port, "connect_timeout_s": 1})
        assert info.value.retryable


    def test_directory_locked_by_another_process_says_so(self):
        """An embedded directory held by another process fails with a hint at the cause."""

        def locked():
            raise ProgrammingError("Code: 76. DB::Exception: Cannot lock file /srv/store/status. (CANNOT_OPEN_FILE)")

        store = Store(locked, embedded=True, target="chdb:///srv/store")
        with pytest.raises(PermanentStoreError, match="is another sovtel process using it") as info:
            store.connect()
        assert info.value.code == 76


class TestStaleResultGuard:
    def test_query_after_mid_stream_failure_returns_its_own_data(self, store):
        """Regression (design §8): after a query fails part-way, the next query returns its own result."""
        with pytest.raises(PermanentStoreError) as info:
            store.query_rows("SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000")
        assert info.value.code == 395
        assert store.query_rows("SELECT 42") == [(42,)]
        assert store.query_rows("SELECT number FROM numbers(3)") == [(0,), (1,), (2,)]

    def test_arrow_query_after_mid_stream_failure_returns_its_own_data(self, store):
        """The guard also covers Arrow results and commands after a failure."""
        with pytest.raises(StoreError):
            store.query_arrow("SELECT throwIf(number = 50000) AS x FROM numbers(100000) SETTINGS max_block_size = 1000")
        assert store.query_arrow("SELECT 7 AS n").to_pylist() == [{"n": 7}]
        with pytest.raises(StoreError):
            store.command("SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000")
        assert store.command("SELECT 5") == 5

    def test_insert_after_failed_insert_lands_correctly(self, store, schema, span_factory):
        """A fast-path insert rejected by the server leaves the store usable for the next one."""
        table = f"{schema.database}.checked"
        store.command(f"CREATE TABLE {table} AS {schema.database}.spans")
        store.command(f"ALTER TABLE {table} ADD CONSTRAINT few_tokens CHECK input_tokens < 5000")
        spans = span_factory(10)
        index = spans.schema.get_field_index("input_tokens")
        too_many = spans.set_column(index, "input_tokens", pa.array([9_999] * 10, pa.uint32()))
        with pytest.raises(PermanentStoreError) as info:
            store.insert_arrow(table, too_many)
        assert info.value.code == 469  # VIOLATED_CONSTRAINT
        store.insert_arrow(table, span_factory(10))
        assert store.query_rows(f"SELECT count() FROM {table}") == [(10,)]
        assert store.query_rows("SELECT 3") == [(3,)]


class TestInsertPaths:
    def test_records_schema_batches_take_the_fast_path(self, store, schema, span_factory):
        """A batch of the records schema goes through chDB's Python() table function (the fast path)."""
        store.insert_arrow(f"{schema.database}.spans", span_factory(5))
        assert store._inserter is not None  # the fast path's engine handle was opened and used

    @pytest.mark.parametrize(
        ("column", "values", "code"),
        [
            ("input_tokens", pa.array(["abc"]), 6),  # CANNOT_PARSE_TEXT
            ("timestamp", pa.array(["yesterday"]), 41),  # CANNOT_PARSE_DATETIME
            ("no_such_column", pa.array([1]), 16),  # NO_SUCH_COLUMN_IN_TABLE
        ],
    )
    def test_mismatched_types_are_rejected_not_coerced(self, store, schema, column, values, code):
        """Values that do not fit the column type are refused, never silently turned into 0 or 1970."""
        with pytest.raises(PermanentStoreError) as info:
            store.insert_arrow(f"{schema.database}.spans", pa.table({column: values}))
        assert info.value.code == code


class TestStoreLifecycle:
    def test_close_is_idempotent_and_next_call_reopens(self, store):
        """close() twice is harmless and a later call opens the store again."""
        assert store.query_rows("SELECT 1") == [(1,)]
        store.close()
        store.close()
        assert store.query_rows("SELECT 2") == [(2,)]

    def test_concurrent_callers_each_get_their_own_results(self, store, schema, span_factory):
        """Calls from several threads on one store are serialised and never mix results."""
        table = f"{schema.database}.spans"
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                for j in range(15):
                    n = i * 100 + j
                    assert store.query_rows(f"SELECT {n}") == [(n,)]
                    if j % 5 == 0:
                        store.insert_arrow(table, span_factory(20, seed=n))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.query_rows(f"SELECT count() FROM {table}") == [(6 * 3 * 20,)]


def test_engine_and_python_share_one_clock(chdb_dsn: str) -> None:
    """The engine's now() and Python's clock agree, so dates tests compute from Python's now are now for TTLs too."""
    store = Store.from_config(StoreConfig(dsn=chdb_dsn))
    try:
        before = dt.datetime.now(dt.UTC).timestamp()
        (engine_now,) = store.query_rows("SELECT toUnixTimestamp64Milli(now64(3))")[0]
        after = dt.datetime.now(dt.UTC).timestamp()
    finally:
        store.close()
    assert before - 1 <= engine_now / 1000 <= after + 1
