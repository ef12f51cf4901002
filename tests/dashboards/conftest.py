"""A demo-like store for dashboard tests: ten minutes of simulated GPU samples and GenAI spans, loaded once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from collectors.nvml import Config, NvmlReceiver
from collectors.simulated_nvml import SimulatedNVML
from dashboards.macros import TimeRange
from sovtel.component import Accepted, ComponentContext
from sovtel.records import Batch
from sovtel.telemetry import Telemetry
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate
from tests.dashboards.spans import genai_spans

NODE = "gpu-node-01"
SECONDS = 600


@dataclass
class DemoStore:
    """The loaded store, its databases and the time range the data covers."""

    store: Store
    dsn: str
    database: str
    aiact_database: str
    time_range: TimeRange


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class _MetricsInsert:
    """A consumer that inserts metric batches the way the storage exporter does (plain INSERT into metrics)."""

    def __init__(self, store: Store, database: str) -> None:
        self.store, self.database = store, database

    def consume(self, batch: Batch) -> Accepted:
        self.store.insert_arrow(f"{self.database}.metrics", batch.table)
        return Accepted(batch.rows)


def load_gpu_samples(store: Store, database: str, start: float, seconds: int, step: float = 5.0) -> None:
    """Poll two simulated GPUs every ``step`` seconds of simulated time and store the rows."""
    clock = _Clock(start)
    nv = SimulatedNVML(clock=clock)
    r = NvmlReceiver(ComponentContext("nvml", Telemetry().component("nvml"), node=NODE), Config(simulated=True),
                     nv, clock=clock)
    r._consumer = _MetricsInsert(store, database)
    assert r.connect()
    nv.inject_ecc(0, corrected=3)
    for i in range(int(seconds / step)):
        if i == 40:
            # An XID as the event thread would record it, so the error panel has one to show.
            r.devices[1].xids[79] = 1
            r.devices[1].last_xid = 79
        r.poll()
        clock.t += step
    nv.nvmlShutdown()


@pytest.fixture(scope="session")
def demo_store(chdb_dsn: str) -> Iterator[DemoStore]:
    """Migrated databases holding GPU samples, spans (with PII counts and quality scores) and ledger entries."""
    database, aiact = f"dash{os.getpid()}", f"dash{os.getpid()}_aiact"
    admin = Store.from_config(StoreConfig(dsn=chdb_dsn))
    migrate(admin, SchemaSettings(database=database, aiact_database=aiact))
    start = (time.time() // 60) * 60 - SECONDS - 60
    load_gpu_samples(admin, database, start, SECONDS)
    admin.insert_arrow(f"{database}.spans", genai_spans(900, start_s=start, seconds=SECONDS, node=NODE))
    for seq, action in enumerate(("audit.run", "erasure", "retention.apply", "audit.run")):
        admin.command(
            f"INSERT INTO {aiact}.ledger (seq, timestamp, action, actor, payload, prev_hash, hash) VALUES "
            "({seq:UInt64}, fromUnixTimestamp64Milli({ts:Int64}), {action:String}, 'test', '{}', '', '')",
            {"seq": seq, "ts": int((start + 60 * seq) * 1000), "action": action},
        )
    admin.close()
    store = Store.from_config(StoreConfig(dsn=chdb_dsn, database=database))
    r = TimeRange(datetime.fromtimestamp(start - 60, UTC), datetime.fromtimestamp(start + SECONDS + 60, UTC), 10.0)
    yield DemoStore(store, chdb_dsn, database, aiact, r)
    store.close()
