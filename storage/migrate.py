"""Versioned schema migrations: the SQL files in ``storage/migrations``, applied in order, recorded
with their checksums in ``_migrations``, and rendered without running for review (file format: ``Migration``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from storage.backend import Store

Target = Literal["tier", "aiact"]
TARGETS: tuple[Target, ...] = ("tier", "aiact")

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TARGET_LINE = re.compile(r"^--\s*target:\s*(\w+)\s*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

BOOKKEEPING_TABLE = "_migrations"


class MigrationError(Exception):
    """The migrations cannot be applied as they stand (bad file, changed checksum, failed statement)."""


@dataclass(frozen=True)
class SchemaSettings:
    """The values placeholders are filled with; the defaults are the product's retention policy."""

    database: str = "sovtel"
    aiact_database: str = "aiact"
    personal_ttl_days: int = 30
    operational_ttl_days: int = 395
    aiact_ttl_years: int = 10
    cluster: str | None = None
    # Prefix of every MergeTree engine name; "Replicated" once cluster support lands.
    engine_prefix: str = ""

    def problems(self) -> list[str]:
        """Every reason these settings cannot render safe SQL (empty when they can)."""
        out: list[str] = []
        for label, name in (("database", self.database), ("aiact_database", self.aiact_database)):
            if not _IDENTIFIER.match(name):
                out.append(f"{label} {name!r} must be a plain identifier (letters, digits, underscore)")
        if self.database == self.aiact_database:
            out.append("the tier database and the AI-Act database must differ")
        if self.cluster is not None and not _IDENTIFIER.match(self.cluster):
            out.append(f"cluster {self.cluster!r} must be a plain identifier")
        if self.engine_prefix not in ("", "Replicated"):
            out.append("engine_prefix must be '' or 'Replicated'")
        for label, value in (
            ("personal_ttl_days", self.personal_ttl_days),
            ("operational_ttl_days", self.operational_ttl_days),
            ("aiact_ttl_years", self.aiact_ttl_years),
        ):
            if value < 1:
                out.append(f"{label} must be at least 1 (got {value})")
        return out

    def placeholders(self) -> dict[str, str]:
        """Placeholder name → SQL text."""
        return {
            "db": self.database,
            "aiact_db": self.aiact_database,
            "personal_ttl_days": str(int(self.personal_ttl_days)),
            "operational_ttl_days": str(int(self.operational_ttl_days)),
            "aiact_ttl_years": str(int(self.aiact_ttl_years)),
            "on_cluster": f" ON CLUSTER {self.cluster}" if self.cluster else "",
            "replicated": self.engine_prefix,
        }

    def database_for(self, target: Target) -> str:
        """The database whose ``_migrations`` table records migrations of ``target``."""
        return self.aiact_database if target == "aiact" else self.database


@dataclass(frozen=True)
class Migration:
    """One migration file as shipped.

    Format (``NNNN_name.sql``): the first line is ``-- target: tier`` (tables of one tier database,
    recorded in ``{db}._migrations``) or ``-- target: aiact`` (the shared AI-Act database, recorded
    in ``{aiact_db}._migrations``). Whole-line ``--`` comments are dropped; a statement ends with
    ``;`` at the end of a line. Placeholders filled from ``SchemaSettings``: ``{db}``,
    ``{aiact_db}``, ``{personal_ttl_days}``, ``{operational_ttl_days}``, ``{aiact_ttl_years}``,
    ``{on_cluster}`` (empty or `` ON CLUSTER name``) and ``{replicated}`` (engine-name prefix,
    empty or ``Replicated``). Any other ``{name}`` is an error; ClickHouse query parameters
    (``{name:Type}``) are left alone. Statements must be safe to repeat (``IF NOT EXISTS``). The
    checksum covers the file as written, so changing a placeholder value is not a changed file.
    """

    version: int
    name: str
    target: Target
    text: str

    @property
    def label(self) -> str:
        """``0001_name``, as in the file name."""
        return f"{self.version:04d}_{self.name}"

    @property
    def filename(self) -> str:
        """The file name in ``storage/migrations``."""
        return f"{self.label}.sql"

    @property
    def checksum(self) -> str:
        """SHA-256 of the file as written (before placeholders are filled)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, settings: SchemaSettings) -> list[str]:
        """The statements of this file with placeholders filled, in order."""
        values = settings.placeholders()

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise MigrationError(f"{self.filename}: unknown placeholder {{{key}}}")
            return values[key]

        lines = [line for line in self.text.splitlines() if not line.lstrip().startswith("--")]
        statements: list[str] = []
        current: list[str] = []
        for line in lines:
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("\n".join(current).strip().removesuffix(";").rstrip())
                current = []
        tail = "\n".join(current).strip()
        if tail:
            raise MigrationError(f"{self.filename}: the last statement does not end with ';'")
        return [_PLACEHOLDER.sub(fill, s) for s in statements if s]


@dataclass
class MigrationReport:
    """What a run did: labels like ``0001_telemetry_tables@sovtel``."""

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # Versions recorded in a database that this release does not ship (the schema is newer).
    unknown: list[str] = field(default_factory=list)


def _parse(filename: str, text: str) -> Migration:
    m = _FILE_NAME.match(filename)
    if m is None:
        raise MigrationError(f"{filename}: migration files are named NNNN_name.sql")
    first = text.splitlines()[0] if text else ""
    t = _TARGET_LINE.match(first)
    if t is None or t.group(1) not in TARGETS:
        raise MigrationError(f"{filename}: the first line must be '-- target: tier' or '-- target: aiact'")
    target: Target = "aiact" if t.group(1) == "aiact" else "tier"
    return Migration(version=int(m.group(1)), name=m.group(2), target=target, text=text)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: the ones shipped with sovtel), ordered by version."""
    found: list[Migration] = []
    if directory is None:
        root = resources.files("storage") / "migrations"
        for entry in root.iterdir():
            if entry.name.endswith(".sql"):
                found.append(_parse(entry.name, entry.read_text(encoding="utf-8")))
    else:
        for path in directory.glob("*.sql"):
            found.append(_parse(path.name, path.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    seen: dict[int, str] = {}
    for mig in found:
        if mig.version in seen:
            raise MigrationError(f"{mig.filename} and {seen[mig.version]} share version {mig.version:04d}")
        seen[mig.version] = mig.filename
    return found


def _check(settings: SchemaSettings) -> None:
    problems = settings.problems()
    if problems:
        raise MigrationError("invalid schema settings: " + "; ".join(problems))


def _targets(include_aiact: bool) -> tuple[Target, ...]:
    return TARGETS if include_aiact else ("tier",)


def render(
    settings: SchemaSettings | None = None,
    migrations: list[Migration] | None = None,
    include_aiact: bool = True,
) -> str:
    """The SQL a full migration would run, for review or to hand to a DBA (nothing is executed)."""
    settings = settings or SchemaSettings()
    _check(settings)
    migs = migrations if migrations is not None else load_migrations()
    out: list[str] = []
    for target in _targets(include_aiact):
        db = settings.database_for(target)
        out.append(f"-- bookkeeping for {db}\n" + "\n\n".join(f"{stmt};" for stmt in _bootstrap_sql(settings, db)))
    for mig in migs:
        if mig.target not in _targets(include_aiact):
            continue
        out.append(f"-- {mig.filename} (checksum {mig.checksum[:12]})")
        out.extend(f"{stmt};" for stmt in mig.statements(settings))
    return "\n\n".join(out) + "\n"


def _bootstrap_sql(settings: SchemaSettings, db: str) -> list[str]:
    """The database and its ``_migrations`` table, created before any migration runs."""
    on_cluster = settings.placeholders()["on_cluster"]
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}",
        f"CREATE TABLE IF NOT EXISTS {db}.{BOOKKEEPING_TABLE}{on_cluster}\n"
        "(\n"
        "    version UInt32,\n"
        "    name String,\n"
        "    checksum String,\n"
        "    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)\n"
        ")\n"
        f"ENGINE = {settings.engine_prefix}MergeTree\n"
        "ORDER BY version",
    ]


def _applied(store: Store, db: str) -> dict[int, tuple[str, str]]:
    rows = store.query_rows(f"SELECT version, any(name), any(checksum) FROM {db}.{BOOKKEEPING_TABLE} GROUP BY version")
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def migrate(
    store: Store,
    settings: SchemaSettings | None = None,
    migrations: list[Migration] | None = None,
    include_aiact: bool = True,
) -> MigrationReport:
    """Apply every pending migration in version order and record it; idempotent.

    Every applied migration is verified first: one whose file changed since it was applied raises
    ``MigrationError`` naming the file, before anything runs. Statements are written to be safe to
    repeat (``IF NOT EXISTS``), so a run cut short by a failure can simply be run again.
    Store failures propagate as ``StoreError``.
    """
    settings = settings or SchemaSettings()
    _check(settings)
    migs = migrations if migrations is not None else load_migrations()
    targets = _targets(include_aiact)
    report = MigrationReport()

    applied: dict[Target, dict[int, tuple[str, str]]] = {}
    for target in targets:
        db = settings.database_for(target)
        for stmt in _bootstrap_sql(settings, db):
            store.command(stmt)
        applied[target] = _applied(store, db)

    known = {(m.target, m.version) for m in migs}
    for target in targets:
        db = settings.database_for(target)
        for version, (name, _checksum) in sorted(applied[target].items()):
            if (target, version) not in known:
                report.unknown.append(f"{version:04d}_{name}@{db}")

    for mig in migs:
        if mig.target not in targets:
            continue
        done = applied[mig.target].get(mig.version)
        if done is not None and done[1] != mig.checksum:
            db = settings.database_for(mig.target)
            raise MigrationError(
                f"{mig.filename} was changed after it was applied to database {db} "
                f"(recorded checksum {done[1][:12]}, file now {mig.checksum[:12]}); "
                "add a new migration instead of editing an applied one"
            )

    for mig in migs:
        if mig.target not in targets:
            continue
        db = settings.database_for(mig.target)
        label = f"{mig.label}@{db}"
        if mig.version in applied[mig.target]:
            report.skipped.append(label)
            continue
        for i, stmt in enumerate(mig.statements(settings), start=1):
            try:
                store.command(stmt)
            except Exception as exc:
                raise MigrationError(f"{mig.filename}: statement {i} failed on {db}: {exc}") from exc
        store.command(
            f"INSERT INTO {db}.{BOOKKEEPING_TABLE} (version, name, checksum) VALUES "
            "({version:UInt32}, {name:String}, {checksum:String})",
            {"version": mig.version, "name": mig.name, "checksum": mig.checksum},
        )
        report.applied.append(label)
    return report
