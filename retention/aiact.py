"""The AI-Act store: model versions, evaluations, incidents and daily non-personal usage aggregates, written
append-only through the PII guard with a ledger entry per insert, and exported as a bundle for an auditor.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, field_validator

from retention.checkpoints import canonical_json, read_checkpoints
from retention.guard import PiiGuard
from retention.ledger import Ledger, LedgerEntry, Verification, format_timestamp, to_utc_ms
from retention.tables import quote_identifier
from storage.backend import Store

EXPORT_FORMAT = "sovtel-aiact-export/1"
DIGEST_HEX = 32

_TS = pa.timestamp("ms", tz="UTC")

# The AI-Act record tables, their columns in digest order and Arrow types for inserts. Rows are
# digested over exactly these columns, so a column added later does not change old digests.
RECORD_TABLES: Mapping[str, tuple[tuple[str, pa.DataType], ...]] = {
    "model_versions": (
        ("timestamp", _TS), ("model", pa.string()), ("version", pa.string()), ("provider", pa.string()),
        ("hyperparameters", pa.string()), ("training_data", pa.string()), ("deployment_config", pa.string()),
        ("documentation_hash", pa.string()), ("recorded_by", pa.string()),
    ),
    "evaluations": (
        ("timestamp", _TS), ("model", pa.string()), ("version", pa.string()), ("suite", pa.string()),
        ("dataset", pa.string()), ("metric", pa.string()), ("value", pa.float64()), ("threshold", pa.float64()),
        ("passed", pa.bool_()), ("details", pa.string()),
    ),
    "usage_daily": (
        ("day", pa.date32()), ("service_name", pa.string()), ("model", pa.string()), ("provider", pa.string()),
        ("tier", pa.string()), ("requests", pa.uint64()), ("errors", pa.uint64()), ("input_tokens", pa.uint64()),
        ("output_tokens", pa.uint64()), ("mean_latency_ms", pa.float64()), ("p95_latency_ms", pa.float64()),
        ("hallucination_rate", pa.float64()), ("recorded_at", _TS), ("source_database", pa.string()),
    ),
    "incidents": (
        ("timestamp", _TS), ("incident_id", pa.string()), ("model", pa.string()), ("version", pa.string()),
        ("severity", pa.string()), ("status", pa.string()), ("summary", pa.string()), ("details", pa.string()),
        ("reported_by", pa.string()),
    ),
}
# Tables exported besides the record tables (present from migration 0400 on).
EXTRA_EXPORT_TABLES: tuple[str, ...] = ("audit_results",)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelVersion(_Record):
    """One deployed model version's documentation (Annex IV in outline): never the training data itself."""

    model: str = Field(min_length=1, description="The name as spans report it (gen_ai.response.model).")
    version: str = Field(min_length=1)
    provider: str = ""
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_data: str = Field(default="", description="A description of the training data, not the data.")
    deployment_config: dict[str, Any] = Field(default_factory=dict)
    documentation: str = Field(default="", description="The technical documentation text; only its hash is stored.")
    recorded_by: str = "sovtel"


class Evaluation(_Record):
    """One evaluation result of a model version."""

    model: str = Field(min_length=1)
    version: str = Field(min_length=1)
    suite: str = Field(min_length=1)
    dataset: str = ""
    metric: str = Field(min_length=1)
    value: float
    threshold: float | None = None
    passed: bool | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Incident(_Record):
    """An incident (Art. 73 serious incidents among them) concerning a model version."""

    incident_id: str = Field(min_length=1)
    model: str = Field(min_length=1)
    version: str = ""
    severity: Literal["low", "medium", "high", "serious"] = "medium"
    status: Literal["open", "mitigated", "closed"] = "open"
    summary: str = Field(min_length=1)
    details: str = ""
    reported_by: str = "sovtel"

    @field_validator("incident_id")
    @classmethod
    def _plain(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("incident ids contain no whitespace")
        return value


def normalise(value: Any) -> Any:
    """A value as it reads back from ClickHouse, in JSON form: times in UTC to the millisecond, dates ISO."""
    if isinstance(value, dt.datetime):
        return format_timestamp(to_utc_ms(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def row_digest(table: str, row: Sequence[Any]) -> str:
    """The digest of one record row (its columns in ``RECORD_TABLES`` order), as the ledger keeps it."""
    values = [normalise(v) for v in row]
    return hashlib.sha256(canonical_json([table, values]).encode()).hexdigest()[:DIGEST_HEX]


@dataclass
class AggregateReport:
    """What one aggregation run wrote: the days per source database and the rows inserted."""

    days: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0
    ledger_seq: int | None = None


@dataclass
class IntegrityReport:
    """Rows of the record tables without a ledger digest (inserted or changed outside sovtel), and
    digests without a row (deleted or changed), per table."""

    unrecorded: dict[str, int] = field(default_factory=dict)
    vanished: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every row matches the ledger and every recorded row is still there."""
        return not any(self.unrecorded.values()) and not any(self.vanished.values())


class AiActStore:
    """Writes and reads the AI-Act database; nothing here updates or deletes a row (append-only)."""

    def __init__(
        self,
        store: Store,
        database: str,
        ledger: Ledger,
        guard: PiiGuard,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        quote_identifier(database)
        self.store = store
        self.database = database
        self.ledger = ledger
        self.guard = guard
        self.clock = clock

    def _insert(self, table: str, rows: list[dict[str, Any]], action: str, extra: Mapping[str, Any]) -> LedgerEntry:
        """Guard, insert and record rows of one record table; raises ``PersonalDataError`` before writing."""
        columns = RECORD_TABLES[table]
        self.guard.check(f"{self.database}.{table}", rows)
        arrays = [pa.array([r.get(name) for r in rows], type=ptype) for name, ptype in columns]
        batch = pa.Table.from_arrays(arrays, names=[name for name, _ in columns])
        digests = [row_digest(table, [r.get(name) for name, _ in columns]) for r in rows]
        self.store.insert_arrow(f"{self.database}.{table}", batch)
        return self.ledger.append(action, {"table": table, "rows": len(rows), "row_digests": digests, **extra})

    def register_model(self, mv: ModelVersion) -> LedgerEntry:
        """Record a model version's documentation; the ledger entry names model, version and hashes."""
        doc_hash = hashlib.sha256(mv.documentation.encode()).hexdigest() if mv.documentation else ""
        row = {
            "timestamp": to_utc_ms(self.clock()),
            "model": mv.model,
            "version": mv.version,
            "provider": mv.provider,
            "hyperparameters": canonical_json(mv.hyperparameters),
            "training_data": mv.training_data,
            "deployment_config": canonical_json(mv.deployment_config),
            "documentation_hash": doc_hash,
            "recorded_by": mv.recorded_by,
        }
        return self._insert("model_versions", [row], "aiact.register_model",
                            {"model": mv.model, "version": mv.version, "documentation_hash": doc_hash})

    def record_evaluation(self, ev: Evaluation) -> LedgerEntry:
        """Record one evaluation result."""
        row = {"timestamp": to_utc_ms(self.clock()), **ev.model_dump(exclude={"details"}),
               "details": canonical_json(ev.details)}
        return self._insert("evaluations", [row], "aiact.evaluation",
                            {"model": ev.model, "version": ev.version, "metric": ev.metric})

    def record_incident(self, inc: Incident) -> LedgerEntry:
        """Record an incident (a status change is a new row with the same incident id)."""
        row = {"timestamp": to_utc_ms(self.clock()), **inc.model_dump()}
        return self._insert("incidents", [row], "aiact.incident",
                            {"incident_id": inc.incident_id, "severity": inc.severity, "status": inc.status})

    def aggregated_days(self, source_database: str) -> set[dt.date]:
        """Days already aggregated from ``source_database``."""
        rows = self.store.query_rows(
            f"SELECT DISTINCT day FROM {quote_identifier(self.database)}.usage_daily "
            "WHERE source_database = {src:String}",
            {"src": source_database},
        )
        return {r[0] for r in rows}

    def aggregate_usage(self, tier_store: Store, tier_database: str, *, only_days: Sequence[dt.date] | None = None,
                        report: AggregateReport | None = None) -> AggregateReport:
        """Compute daily non-personal aggregates per model version from a tier's spans and store them.

        Every complete UTC day (before today) not yet aggregated from this tier database is done
        once: requests, errors, tokens, mean and p95 latency, and the hallucination rate (share of
        scored answers with ``quality_scores['hallucination'] >= 0.5``; NULL when none was scored).
        Run it before the personal stream expires: ``retention apply`` does so first.
        """
        report = report if report is not None else AggregateReport()
        done = sorted(self.aggregated_days(tier_database))
        where = ["(s.operation != '' OR s.input_tokens > 0 OR s.output_tokens > 0)",
                 "toDate(s.timestamp) < toDate(now(), 'UTC')",
                 "toDate(s.timestamp) NOT IN {done:Array(Date)}"]
        params: dict[str, Any] = {"done": done}
        if only_days is not None:
            where.append("toDate(s.timestamp) IN {days:Array(Date)}")
            params["days"] = list(only_days)
        rows = tier_store.query_rows(
            "SELECT toDate(s.timestamp) AS day, s.service_name, if(s.response_model = '', s.request_model, "
            "s.response_model) AS model, s.provider, s.tier, count() AS requests, "
            "countIf(upper(toString(s.status_code)) IN ('ERROR', 'STATUS_CODE_ERROR') OR s.error_type != '') "
            "AS errors, "
            "sum(toUInt64(s.input_tokens)), sum(toUInt64(s.output_tokens)), avg(s.duration_ns) / 1e6, "
            "quantileExact(0.95)(s.duration_ns) / 1e6, "
            "if(countIf(mapContains(s.quality_scores, 'hallucination')) = 0, NULL, "
            "countIf(mapContains(s.quality_scores, 'hallucination') AND s.quality_scores['hallucination'] >= 0.5) "
            "/ countIf(mapContains(s.quality_scores, 'hallucination'))) "
            f"FROM {quote_identifier(tier_database)}.spans AS s WHERE {' AND '.join(where)} "
            "GROUP BY day, s.service_name, model, s.provider, s.tier ORDER BY day, model, s.service_name",
            params,
        )
        if not rows:
            return report
        recorded_at = to_utc_ms(self.clock())
        names = [n for n, _ in RECORD_TABLES["usage_daily"]]
        out = [
            dict(zip(names, [day, str(svc), str(model), str(prov), str(tier), int(req), int(err), int(tin), int(tout),
                             float(mean), float(p95), None if hall is None else float(hall), recorded_at,
                             tier_database], strict=True))
            for day, svc, model, prov, tier, req, err, tin, tout, mean, p95, hall in rows
        ]
        days = sorted({r["day"].isoformat() for r in out})
        entry = self._insert("usage_daily", out, "aiact.usage_daily", {"source_database": tier_database, "days": days})
        report.days.setdefault(tier_database, []).extend(days)
        report.rows += len(out)
        report.ledger_seq = entry.seq
        return report

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of a record table, columns in digest order."""
        cols = ", ".join(quote_identifier(n) for n, _ in RECORD_TABLES[table])
        return self.store.query_rows(f"SELECT {cols} FROM {quote_identifier(self.database)}.{quote_identifier(table)}")

    def check_integrity(self, entries: Sequence[LedgerEntry], expired_before: dt.datetime | None = None
                        ) -> IntegrityReport:
        """Compare every record row with the digests the ledger holds (append-only check).

        Rows recorded by entries older than ``expired_before`` may be gone: the AI-Act retention
        removes them (a usage row ages by its day, which precedes its entry by up to the personal
        retention, so callers leave that much slack).
        """
        recorded: dict[str, Counter[str]] = {t: Counter() for t in RECORD_TABLES}
        may_expire: dict[str, Counter[str]] = {t: Counter() for t in RECORD_TABLES}
        for e in entries:
            data = e.data
            table = data.get("table")
            if e.action.startswith("aiact.") and table in recorded:
                digests = [str(d) for d in data.get("row_digests", [])]
                recorded[table].update(digests)
                if expired_before is not None and e.timestamp < to_utc_ms(expired_before):
                    may_expire[table].update(digests)
        report = IntegrityReport()
        for table in RECORD_TABLES:
            stored = Counter(row_digest(table, r) for r in self.table_rows(table))
            report.rows[table] = sum(stored.values())
            report.unrecorded[table] = sum((stored - recorded[table]).values())
            report.vanished[table] = sum(((recorded[table] - stored) - may_expire[table]).values())
        return report

    def export(self, out_dir: Path, verification: Verification, *, checkpoint_dir: Path | None = None,
               signing_key: Ed25519PrivateKey | None = None, public_key_file: Path | None = None) -> Path:
        """Write a bundle for an auditor: JSONL of every AI-Act table and the ledger, the checkpoints,
        and ``manifest.json`` with each file's SHA-256 (signed as ``manifest.sig`` when a key is given)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files: dict[str, dict[str, Any]] = {}

        def write_jsonl(rel: str, records: Sequence[Mapping[str, Any]]) -> None:
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
            path.write_text(text, encoding="utf-8")
            files[rel] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "rows": len(records)}

        for table, columns in RECORD_TABLES.items():
            names = [n for n, _ in columns]
            write_jsonl(f"tables/{table}.jsonl",
                        [dict(zip(names, [normalise(v) for v in r], strict=True)) for r in self.table_rows(table)])
        for table in EXTRA_EXPORT_TABLES:
            if self._table_exists(table):
                arrow = self.store.query_arrow(
                    f"SELECT * FROM {quote_identifier(self.database)}.{quote_identifier(table)} ORDER BY timestamp")
                write_jsonl(f"tables/{table}.jsonl",
                            [{k: normalise(v) for k, v in r.items()} for r in arrow.to_pylist()])
        write_jsonl("ledger.jsonl", [e.as_json() for e in self.ledger.entries()])
        if checkpoint_dir is not None:
            checkpoints, _ = read_checkpoints(checkpoint_dir, self.ledger.database)
            for cp in checkpoints:
                target = out_dir / "checkpoints" / cp.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(checkpoint_dir / cp.filename, target)
                files[f"checkpoints/{cp.filename}"] = {"sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        public_pem = out_dir / "ledger-signing.pub.pem"
        if public_key_file is not None:
            shutil.copyfile(public_key_file, public_pem)
        elif signing_key is not None:
            public_pem.write_bytes(signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        if public_pem.exists():
            files[public_pem.name] = {"sha256": hashlib.sha256(public_pem.read_bytes()).hexdigest()}
        manifest = {
            "format": EXPORT_FORMAT,
            "created": format_timestamp(self.clock()),
            "store": self.store.target,
            "database": self.database,
            "ledger": {"entries": verification.entries, "head_seq": verification.head_seq,
                       "head_hash": verification.head_hash},
            "verification": verification.as_json(),
            "files": files,
            "hash_chain": "hash = sha256(prev_hash + canonical_json({seq, timestamp, action, actor, payload}))",
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        (out_dir / "manifest.json").write_text(text, encoding="utf-8")
        if signing_key is not None:
            (out_dir / "manifest.sig").write_text(base64.b64encode(signing_key.sign(text.encode())).decode() + "\n")
        return out_dir / "manifest.json"

    def _table_exists(self, table: str) -> bool:
        rows = self.store.query_rows(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": table},
        )
        return bool(rows and rows[0][0])
