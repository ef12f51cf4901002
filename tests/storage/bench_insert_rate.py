"""Insert-rate measurement for Store.insert_arrow on the embedded store; not part of the default test run.

Run it by name: ``python -m pytest tests/storage/bench_insert_rate.py -s``. It inserts 100k realistic
span rows (12 span attributes each, four content columns empty) per batch size into a database
with every shipped migration (so the views on spans and the indexes are paid for), and prints rows
per wall-clock second and per CPU second of the process (engine threads included), the latter
being the steadier figure on a shared machine.
"""

from __future__ import annotations

import time

import pytest

from storage.backend import Store, StoreConfig, client_factory
from storage.migrate import SchemaSettings, migrate

ROWS = 100_000
BATCH_SIZES = (512, 5_000, 20_000)
REPEATS = 3


@pytest.mark.slow
@pytest.mark.parametrize("path", ["python_table_function", "clickhouse_connect"])
def test_insert_rate(chdb_dsn, keepalive_store, unique_db, span_factory, path):
    """Prints the best of three insert rates per batch size; asserts only that every row arrived once."""
    config = StoreConfig(dsn=chdb_dsn)
    store = (
        Store.from_config(config)
        if path == "python_table_function"
        else Store(client_factory(config), embedded=True, target=config.describe())
    )
    migrate(store, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact"))
    spans = span_factory(ROWS, seed=42)
    table = f"{unique_db}.spans"
    lines = []
    for batch_rows in BATCH_SIZES:
        best_wall = best_cpu = 0.0
        for attempt in range(REPEATS):
            store.command(f"TRUNCATE TABLE {table}")
            started, cpu_started = time.perf_counter(), time.process_time()
            for offset in range(0, ROWS, batch_rows):
                part = spans.slice(offset, batch_rows)
                store.insert_arrow(table, part, dedup_token=f"bench-{batch_rows}-{attempt}-{offset}")
            best_wall = max(best_wall, ROWS / (time.perf_counter() - started))
            best_cpu = max(best_cpu, ROWS / (time.process_time() - cpu_started))
            assert store.query_rows(f"SELECT count() FROM {table}") == [(ROWS,)]
        lines.append(
            f"{path:22s} batch {batch_rows:6d}: {best_wall:10,.0f} rows/s wall, {best_cpu:10,.0f} rows per CPU-second"
        )
    store.close()
    print("\n" + "\n".join(lines))
