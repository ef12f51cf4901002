"""Unmodified clickhouse-connect, and the storage layer's server mode, against `sovtel serve`: the
spans schema by migration, 100,000 rows in and out in every API and every compression setting."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sovtel.records import SPAN_SCHEMA
from storage.backend import PermanentStoreError, Store, StoreConfig
from storage.migrate import SchemaSettings, migrate
from tests.storage.conftest import make_spans
from tests.storage.serve.conftest import ServedStore

ROWS = 100_000


@pytest.fixture(scope="module")
def store(served: ServedStore) -> Iterator[Store]:
    """The storage layer in server mode (basic auth as admin, password by env: reference)."""
    config = StoreConfig(host=served.host, port=served.port, username="admin",
                         password="env:SOVTEL_TEST_ADMIN_PASSWORD")
    s = Store.from_config(config, resolve=lambda ref: served.env[ref.removeprefix("env:")])
    yield s
    s.close()


@pytest.fixture(scope="module")
def schema(store: Store) -> SchemaSettings:
    """The tier and AI-Act databases, created by the shipped migrations over HTTP."""
    settings = SchemaSettings(database="served", aiact_database="served_aiact")
    report = migrate(store, settings)
    assert report.applied and not report.unknown
    return settings


@pytest.fixture(scope="module")
def spans() -> pa.Table:
    """100,000 realistic spans."""
    return make_spans(ROWS, seed=3)


@pytest.fixture(scope="module")
def loaded(store: Store, schema: SchemaSettings, spans: pa.Table) -> str:
    """The spans table with the 100,000 spans inserted by the storage layer (Arrow over HTTP)."""
    table = f"{schema.database}.spans"
    store.insert_arrow(table, spans, dedup_token="served-spans-1")
    return table


class TestStorageLayer:
    def test_migrations_are_idempotent_over_http(self, store, schema):
        """A second migration run over HTTP applies nothing."""
        report = migrate(store, schema)
        assert not report.applied and report.skipped

    def test_insert_arrow_and_read_back(self, store, loaded, spans):
        """100,000 spans inserted as Arrow come back with the same ids and token sums."""
        rows = store.query_rows(f"SELECT count(), sum(input_tokens), uniqExact(span_id) FROM {loaded}")
        assert rows == [(ROWS, sum(spans.column("input_tokens").to_pylist()), ROWS)]

    def test_dedup_token_skips_a_replay(self, store, loaded):
        """Replaying the same batch with its dedup token adds nothing."""
        store.insert_arrow(loaded, make_spans(ROWS, seed=3), dedup_token="served-spans-1")
        assert store.query_rows(f"SELECT count() FROM {loaded}") == [(ROWS,)]

    def test_query_arrow_keeps_the_schema(self, store, loaded):
        """Arrow results carry every column of the span schema."""
        table = store.query_arrow(f"SELECT * FROM {loaded} ORDER BY span_id LIMIT 1000")
        assert table.num_rows == 1000
        assert set(SPAN_SCHEMA.names) <= set(table.column_names)

    def test_parameters(self, store, loaded):
        """Bound parameters filter server-side."""
        rows = store.query_rows(f"SELECT count() FROM {loaded} WHERE request_model = {{m:String}}",
                                {"m": "no-such-model"})
        assert rows == [(0,)]

    def test_errors_are_classified(self, store):
        """A bad statement is a permanent error with the server's code."""
        with pytest.raises(PermanentStoreError) as err:
            store.query_rows("SELECT * FROM served.no_such_table")
        assert err.value.code == 60


class TestClickHouseConnect:
    def test_query_back_and_dataframe(self, served, loaded):
        """Rows, a pandas DataFrame and parameter binding work as against ClickHouse."""
        client = served.client()
        result = client.query(f"SELECT span_id, input_tokens FROM {loaded} ORDER BY span_id LIMIT 5")
        assert len(result.result_rows) == 5 and isinstance(result.result_rows[0][1], int)
        frame = client.query_df(f"SELECT service_name, count() AS n FROM {loaded} GROUP BY service_name "
                                "HAVING n > {min:UInt32} ORDER BY service_name", parameters={"min": 0})
        assert int(frame["n"].sum()) == ROWS

    def test_native_round_trip_of_all_rows(self, served, schema, loaded):
        """All 100,000 spans read back as Python rows and inserted again (Native both ways) are identical."""
        client = served.client()
        result = client.query(f"SELECT * FROM {loaded}")
        assert len(result.result_rows) == ROWS
        copy = f"{schema.database}.spans_native_copy"
        client.command(f"CREATE TABLE {copy} AS {loaded}")
        client.insert(copy, result.result_rows, column_names=result.column_names)
        digest = "SELECT count(), sum(cityHash64(span_id, input_tokens, span_attributes, ttft_s)) FROM {}"
        assert client.query(digest.format(copy)).result_rows == client.query(digest.format(loaded)).result_rows

    def test_streams(self, served, loaded):
        """Row-block and Arrow streams deliver every row."""
        client = served.client()
        with client.query_row_block_stream(f"SELECT span_id FROM {loaded}") as stream:
            rows = sum(len(block) for block in stream)
        with client.query_arrow_stream(f"SELECT span_id, input_tokens FROM {loaded}") as stream:
            batches = sum(batch.num_rows for batch in stream)
        assert rows == batches == ROWS

    @pytest.mark.parametrize("compress", [True, "lz4", "zstd", "gzip", False])
    def test_every_compression_setting(self, served, schema, compress):
        """Insert, query, query_arrow, insert_arrow and streams work with each compression setting."""
        client = served.client(compress=compress)
        table = f"{schema.database}.spans_{str(compress).lower()}"
        client.command(f"CREATE TABLE {table} AS {schema.database}.spans")
        data = make_spans(5_000, seed=11)
        client.insert_arrow(table, data)
        first = client.query(f"SELECT * FROM {table} ORDER BY span_id LIMIT 1000")
        client.insert(table, first.result_rows, column_names=first.column_names)
        arrow = client.query_arrow(f"SELECT * FROM {table}")
        with client.query_row_block_stream(f"SELECT trace_id FROM {table}") as stream:
            streamed = sum(len(block) for block in stream)
        assert arrow.num_rows == streamed == 6_000
        assert client.command(f"SELECT count() FROM {table} WHERE span_id = {{id:String}}",
                              parameters={"id": min(data.column("span_id").to_pylist())}) == 2

    def test_bad_query_raises_database_error_with_code(self, served):
        """A bad query raises DatabaseError carrying ClickHouse's code."""
        client = served.client()
        with pytest.raises(DatabaseError) as err:
            client.query("SELECT no_such_column FROM system.one")
        assert err.value.code == 47

    def test_token_login(self, served):
        """A bearer token (access_token) logs in as its user."""
        assert served.client("reader", token=True).command("SELECT currentUser() != ''") == 1
