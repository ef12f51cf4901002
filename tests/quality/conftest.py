"""Fixtures for quality tests: a migrated tier database in the shared embedded store, filled with spans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from quality.simulate import traffic_table
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate

# Midnight UTC two days before the run: a whole day of traffic, in the past and well inside the
# 30-day personal retention, whatever the date (rows older than the TTL are dropped on insert).
DAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
START_NS = int(DAY.timestamp()) * 1_000_000_000
V1, V2 = "llama-3.1-8b-instruct-v1", "llama-3.1-8b-instruct-v2"


@pytest.fixture
def store(chdb_dsn: str, unique_db: str) -> Iterator[Store]:
    """A store whose database ``unique_db`` has every tier migration applied."""
    s = Store.from_config(StoreConfig(dsn=chdb_dsn))
    migrate(s, SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact"), include_aiact=False)
    yield s
    s.close()


def scored_traffic(seed: int, requests: int, rates: dict[str, float], start_ns: int = START_NS,
                   spacing_ns: int = 20_000_000_000, prompt_scale: dict[str, float] | None = None) -> pa.Table:
    """Generated traffic whose chat spans carry hallucination decisions drawn at the given rate per model."""
    table = traffic_table(seed, requests, prompt_scale, start_ns=start_ns, spacing_ns=spacing_ns)
    rng = np.random.default_rng(seed)
    scores = []
    for model, op in zip(table.column("response_model").to_pylist(), table.column("operation").to_pylist(),
                         strict=True):
        if op != "chat":
            scores.append([])
            continue
        bad = float(rng.random() < rates.get(model, 0.05))
        scores.append([("groundedness", 0.2 if bad else 0.9), ("hallucination", bad)])
    i = table.schema.get_field_index("quality_scores")
    return table.set_column(i, table.schema.field(i), pa.array(scores, type=table.schema.field(i).type))
