"""Storage fixtures: stores on the shared chDB directory, migrated databases, realistic span tables."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest

from sovtel.records import Signal, table_from_columns
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, migrate

ATTRIBUTE_KEYS = (
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.request.top_p",
    "gen_ai.response.id",
    "gen_ai.openai.api_base",
    "http.route",
    "server.address",
    "server.port",
    "deployment.environment",
    "cloud.region",
    "k8s.namespace.name",
    "user_agent.original",
)


@pytest.fixture(scope="session")
def keepalive_store(chdb_dsn: str) -> Iterator[Store]:
    """One handle open for the whole session, so the embedded engine is not restarted per test."""
    store = Store.from_config(StoreConfig(dsn=chdb_dsn))
    store.connect()
    yield store
    store.close()


@pytest.fixture
def store(chdb_dsn: str, keepalive_store: Store) -> Iterator[Store]:
    """A fresh store on the shared embedded directory (fast Arrow insert path)."""
    s = Store.from_config(StoreConfig(dsn=chdb_dsn))
    yield s
    s.close()


@pytest.fixture
def schema(store: Store, unique_db: str) -> SchemaSettings:
    """A migrated tier database and AI-Act database of this test's own."""
    settings = SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact")
    migrate(store, settings)
    return settings


@pytest.fixture
def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now_ns() -> int:
    """Current time in ns; rows must be recent or the tables' TTL drops them on insert."""
    return time.time_ns()


def timestamps(n: int, start: int | None = None, step: int = 1_000) -> pa.Array:
    """``n`` UTC nanosecond timestamps from ``start`` (default: one hour ago)."""
    base = now_ns() - 3_600 * 10**9 if start is None else start
    return pa.array([base + i * step for i in range(n)], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))


def make_spans(n: int, seed: int = 0) -> pa.Table:
    """A span table of ``n`` GenAI requests with realistic values: 12 span attributes per row,
    resource attributes, events, quality scores, and four of the six content columns empty."""
    rnd = random.Random(seed)
    attr_sets = [
        [(k, f"{k.rsplit('.', 1)[-1]}-{rnd.randrange(100)}") for k in ATTRIBUTE_KEYS] for _ in range(256)
    ]
    nodes = [f"gpu-node-{i}" for i in range(8)]
    resources = [[("service.version", "1.4.2"), ("host.name", node), ("k8s.pod.name", f"{node}-pod")] for node in nodes]
    models = ("llama-3.1-70b-instruct", "mistral-large-2", "qwen2.5-72b")
    return table_from_columns(
        Signal.TRACES,
        {
            "timestamp": timestamps(n),
            "duration_ns": [rnd.randrange(10**7, 10**10) for _ in range(n)],
            "trace_id": [f"{rnd.getrandbits(128):032x}" for _ in range(n)],
            "span_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
            "parent_span_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
            "service_name": [rnd.choice(("chat-api", "rag-search", "agent")) for _ in range(n)],
            "node": [nodes[i % 8] for i in range(n)],
            "span_name": ["chat"] * n,
            "span_kind": ["CLIENT"] * n,
            "status_code": [rnd.choice(("OK", "OK", "OK", "ERROR")) for _ in range(n)],
            "operation": ["chat"] * n,
            "provider": ["vllm"] * n,
            "request_model": [rnd.choice(models) for _ in range(n)],
            "response_model": [rnd.choice(models) for _ in range(n)],
            "input_tokens": [rnd.randrange(20, 4_000) for _ in range(n)],
            "output_tokens": [rnd.randrange(1, 1_000) for _ in range(n)],
            "ttft_s": [None if i % 9 == 0 else rnd.random() for i in range(n)],
            "finish_reasons": [["stop"]] * n,
            "tenant_id": [f"tenant-{rnd.randrange(20):02d}" for _ in range(n)],
            "user_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
            "session_id": [f"{rnd.getrandbits(64):016x}" for _ in range(n)],
            "key_id": ["k2026-11"] * n,
            "tier": ["sovereign"] * n,
            "input_messages": ['[{"role":"user","content":"<PERSON_3f2a> asks about invoices"}]'] * n,
            "output_messages": ['[{"role":"assistant","content":"Here is the summary."}]'] * n,
            "resource_attributes": [resources[i % 8] for i in range(n)],
            "span_attributes": [attr_sets[rnd.randrange(256)] for _ in range(n)],
            "event_names": [["gen_ai.choice"]] * n,
            "event_attributes": [[[("index", "0"), ("finish_reason", "stop")]]] * n,
            "quality_scores": [[("relevance", rnd.random())]] * n,
        },
    )


@pytest.fixture
def span_factory() -> Callable[..., pa.Table]:
    """``make_spans`` for tests: ``span_factory(n, seed=0)``."""
    return make_spans


@pytest.fixture
def ts() -> Callable[..., pa.Array]:
    """``timestamps`` for tests: ``ts(n, start=None, step=1000)``."""
    return timestamps
