"""Retention fixtures: migrated tier and AI-Act databases on the shared chDB directory, a ledger, a key ring
with rotated keys, a checkpoint signing key, and helpers that insert backdated rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.keyring import KeyRing, rotate
from processors.pseudonymise import pseudonym
from retention.guard import PiiGuard
from retention.ledger import Ledger
from sovtel.records import Signal, table_from_columns
from storage.backend import Store, StoreConfig
from storage.migrate import SchemaSettings, load_migrations, migrate

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Databases:
    """One migrated deployment: tier databases and the AI-Act database, all of this test's own."""

    store: Store
    tiers: tuple[str, ...]
    aiact: str
    dsn: str


@pytest.fixture(scope="session")
def shared_store(chdb_dsn: str) -> Iterator[Store]:
    """One handle on the shared embedded store for the whole session (the engine starts once)."""
    store = Store.from_config(StoreConfig(dsn=chdb_dsn))
    store.connect()
    yield store
    store.close()


@pytest.fixture(scope="session")
def guard() -> PiiGuard:
    """A pattern-only PII guard (NER off keeps tests fast; the recognizers are the processors' own)."""
    return PiiGuard(ner="off")


def migrate_deployment(store: Store, name: str, tiers: int = 1) -> Databases:
    """Migrate ``tiers`` tier databases (``name``, ``name_b`` …) and ``name_aiact`` in the shared store."""
    aiact = f"{name}_aiact"
    names = tuple(name if i == 0 else f"{name}_{chr(ord('a') + i)}" for i in range(tiers))
    for db in names:
        migrate(store, SchemaSettings(database=db, aiact_database=aiact))
    return Databases(store, names, aiact, "")


@pytest.fixture
def dbs(shared_store: Store, unique_db: str, chdb_dsn: str) -> Databases:
    """A migrated tier database and AI-Act database."""
    out = migrate_deployment(shared_store, unique_db)
    out.dsn = chdb_dsn
    return out


@pytest.fixture
def two_tiers(shared_store: Store, unique_db: str, chdb_dsn: str) -> Databases:
    """Two migrated tier databases sharing one AI-Act database."""
    out = migrate_deployment(shared_store, unique_db, tiers=2)
    out.dsn = chdb_dsn
    return out


@pytest.fixture
def aiact_only(shared_store: Store, unique_db: str, chdb_dsn: str) -> Databases:
    """Only the AI-Act database migrated (faster, for tests that need no tier tables)."""
    settings = SchemaSettings(database=unique_db, aiact_database=f"{unique_db}_aiact")
    migrate(shared_store, settings, migrations=[m for m in load_migrations() if m.target == "aiact"])
    return Databases(shared_store, (), settings.aiact_database, chdb_dsn)


@pytest.fixture
def ledger(aiact_only: Databases, guard: PiiGuard) -> Ledger:
    """The ledger of the test's AI-Act database."""
    return Ledger(aiact_only.store, aiact_only.aiact, actor="test-suite", guard=guard)


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path, str]:
    """An Ed25519 key: the key, its public PEM file, and a ``file:`` reference to the private PEM."""
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "signing.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = tmp_path / "signing.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, public, f"file:{private}"


@dataclass
class Keys:
    """A key ring with two node keys (one rotated out) and one pepper, and the key material."""

    path: Path
    ring: KeyRing
    material: Mapping[str, bytes]

    def stored(self, subject: str, node: str = "n1", pepper: str = "p1") -> str:
        """The subject as the store holds it: HMAC(pepper, HMAC(node key, subject))."""
        return pseudonym(self.material[pepper], pseudonym(self.material[node], subject))

    def collector(self, subject: str, node: str = "n1") -> str:
        """The subject as the collector emits it: HMAC(node key, subject)."""
        return pseudonym(self.material[node], subject)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    """A key ring file with node keys n1 and n2 (active) and pepper p1, keys in files."""
    path = tmp_path / "keyring.yaml"
    for kind in ("node", "node", "pepper"):
        rotate(path, kind, key_dir=tmp_path / "keys")  # type: ignore[arg-type]
    ring = KeyRing.load(path)
    material = {kid: ring.key("node", kid) for kid in ("n1", "n2")} | {"p1": ring.key("pepper", "p1")}
    return Keys(path, ring, material)


def ts_array(times: Sequence[dt.datetime]) -> pa.Array:
    """UTC nanosecond timestamps."""
    return pa.array([int(t.timestamp() * 1e9) for t in times], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))


def insert_spans(store: Store, database: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert GenAI spans; each row gives ``ts`` and any span columns (defaults fill the rest)."""
    columns: dict[str, list[Any]] = {}
    names = sorted({k for r in rows for k in r} - {"ts"})
    for name in names:
        columns[name] = [r.get(name, _default(name)) for r in rows]
    table = table_from_columns(Signal.TRACES, {
        "timestamp": ts_array([r["ts"] for r in rows]),
        "operation": ["chat"] * len(rows),
        "span_name": ["chat"] * len(rows),
        **columns,
    })
    store.insert_arrow(f"{database}.spans", table)


def insert_logs(store: Store, database: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert log records; each row gives ``ts`` and any log columns."""
    names = sorted({k for r in rows for k in r} - {"ts"})
    table = table_from_columns(Signal.LOGS, {
        "timestamp": ts_array([r["ts"] for r in rows]),
        "observed_timestamp": ts_array([r["ts"] for r in rows]),
        **{n: [r.get(n, _default(n)) for r in rows] for n in names},
    })
    store.insert_arrow(f"{database}.logs", table)


def _default(name: str) -> Any:
    if name in ("input_tokens", "output_tokens", "duration_ns", "severity_number"):
        return 0
    if name in ("quality_scores", "span_attributes", "log_attributes", "resource_attributes"):
        return []
    return ""


def stop_ttl_merges(store: Store, database: str, tables: Sequence[str]) -> None:
    """Hold back background TTL merges, as the 4 h ``merge_with_ttl_timeout`` would, so backdated rows
    stay until ``retention apply`` acts (otherwise chDB may drop them on its own within seconds)."""
    for table in tables:
        store.command(f"SYSTEM STOP TTL MERGES {database}.{table}")


def count(store: Store, sql: str, params: Mapping[str, Any] | None = None) -> int:
    """The first column of the first row as an int."""
    return int(store.query_rows(sql, params)[0][0])
