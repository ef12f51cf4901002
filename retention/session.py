"""What a compliance job works on: the tier stores and databases, the AI-Act store, its ledger and PII
guard (a ``JobSession``), assembled from the jobs configuration and what the caller names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from retention.aiact import AiActStore
from retention.checkpoints import load_public_key, load_signing_key
from retention.config import JobsConfig
from retention.erasure import Tier
from retention.guard import NerMode, PiiGuard
from retention.ledger import Ledger
from retention.policies import AiActPolicy, OperationalPolicy, PersonalPolicy, RetentionPolicies
from retention.tables import CatalogError, quote_identifier
from sovtel.config import resolve_secret
from storage.backend import Store, StoreConfig, StoreLocation

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """A progress callback that shows nothing."""


class JobInputError(Exception):
    """The input of a job is wrong (usage or configuration); nothing was done."""


class JobProblem(Exception):
    """The job found a problem that stops it (an empty ledger, a missing one)."""


@dataclass(frozen=True)
class SessionOptions:
    """Which stores a job works on, and who and how it records.

    ``stores`` are the tier stores (locations to open, or stores already open, which the session
    then owns); without any, the configuration's tiers. Every tier store holds ``databases`` (default
    the configuration's, else ``sovtel``). The AI-Act database lives in the configuration's AI-Act
    store, else in the first tier store.
    """

    config: JobsConfig = field(default_factory=JobsConfig)
    stores: tuple[StoreLocation | Store, ...] = ()
    databases: tuple[str, ...] = ()
    aiact_database: str | None = None
    actor: str | None = None
    ner: NerMode | None = None


@dataclass
class JobSession:
    """The open stores, databases, ledger and configuration one job works with; close it after use."""

    config: JobsConfig
    tiers: list[Tier]
    aiact_store: Store
    aiact_database: str
    ledger: Ledger
    guard: PiiGuard
    stores: list[Store] = field(default_factory=list)

    def aiact(self) -> AiActStore:
        """The AI-Act store writer."""
        return AiActStore(self.aiact_store, self.aiact_database, self.ledger, self.guard)

    def by_store(self) -> list[tuple[Store, list[str]]]:
        """The tier databases grouped by store; a separate AI-Act store comes last with no tier database."""
        groups: dict[int, tuple[Store, list[str]]] = {}
        for tier in self.tiers:
            groups.setdefault(id(tier.store), (tier.store, []))[1].append(tier.database)
        if id(self.aiact_store) not in groups:
            groups[id(self.aiact_store)] = (self.aiact_store, [])
        return list(groups.values())

    def aiact_database_in(self, store: Store) -> str | None:
        """The AI-Act database when ``store`` holds it, else None."""
        return self.aiact_database if store is self.aiact_store else None

    def close(self) -> None:
        """Close every store opened (idempotent)."""
        for store in self.stores:
            store.close()

    def __enter__(self) -> JobSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def check_database_names(names: tuple[str, ...]) -> None:
    """JobInputError unless every name is a plain identifier."""
    for name in names:
        try:
            quote_identifier(name)
        except CatalogError as exc:
            raise JobInputError(f"database {exc}") from None


def _open(location: StoreLocation | Store, cache: dict[str, Store]) -> Store:
    """One store per location: a store named twice (a tier and the AI-Act store) is opened once."""
    if isinstance(location, Store):
        return cache.setdefault(location.target, location)
    key = location.describe()
    if key not in cache:
        cache[key] = Store.from_config(StoreConfig(**{n: getattr(location, n) for n in StoreLocation.model_fields}))
    return cache[key]


def open_session(options: SessionOptions) -> JobSession:
    """Open the stores ``options`` name; JobInputError on bad database names or no tier store."""
    config = options.config
    check_database_names((*options.databases, *([options.aiact_database] if options.aiact_database else [])))
    cache: dict[str, Store] = {}
    tiers: list[Tier] = []
    if options.stores:
        for location in options.stores:
            store = _open(location, cache)
            tiers.extend(Tier(store, db) for db in (options.databases or ("sovtel",)))
    elif config.tiers:
        for tier in config.tiers:
            store = _open(tier, cache)
            tiers.extend(Tier(store, db) for db in (options.databases or tier.databases))
    else:
        raise JobInputError("no tier store: name a store, or give a configuration with tiers")
    location = config.aiact
    has_location = any(getattr(location, n) is not None for n in ("path", "dsn", "host"))
    aiact_store = _open(location, cache) if has_location else tiers[0].store
    aiact_db = options.aiact_database or location.database
    guard = PiiGuard(ner=options.ner or config.audit.ner)
    try:
        ledger = Ledger(aiact_store, aiact_db, actor=options.actor or config.ledger.actor, guard=guard)
    except CatalogError as exc:
        for store in cache.values():
            store.close()
        raise JobInputError(str(exc)) from None
    return JobSession(config, tiers, aiact_store, aiact_db, ledger, guard, list(cache.values()))


@dataclass(frozen=True)
class CheckpointOptions:
    """Signed ledger checkpoints: where they go and the keys; each unset one comes from the configuration."""

    directory: Path | None = None
    signing_key: str | None = None
    public_key: Path | None = None


@dataclass(frozen=True)
class CheckpointKeys:
    """The resolved checkpoint directory and keys (None where not configured)."""

    directory: Path | None
    private: Ed25519PrivateKey | None
    public: Ed25519PublicKey | None
    public_key_file: Path | None


def checkpoint_keys(options: CheckpointOptions, config: JobsConfig) -> CheckpointKeys:
    """Resolve the options, else the configuration; CheckpointError when a key cannot be loaded."""
    directory = options.directory or config.ledger.checkpoint_dir
    ref = options.signing_key or config.ledger.signing_key
    pub_path = options.public_key or config.ledger.public_key
    private = load_signing_key(ref, resolve_secret) if ref else None
    public = load_public_key(pub_path) if pub_path else (private.public_key() if private else None)
    return CheckpointKeys(directory, private, public, pub_path)


@dataclass(frozen=True)
class PolicyOverrides:
    """Retention periods that replace the configuration's for one run (None keeps the configured one)."""

    personal_days: int | None = None
    operational_days: int | None = None
    aiact_years: int | None = None
    override_reason: str | None = None

    def apply_to(self, base: RetentionPolicies) -> RetentionPolicies:
        """``base`` with these overrides; JobInputError when a period is outside its allowed range."""
        try:
            personal = base.personal if self.personal_days is None and self.override_reason is None else (
                PersonalPolicy(days=self.personal_days if self.personal_days is not None else base.personal.days,
                               override_reason=self.override_reason or base.personal.override_reason))
            operational = (base.operational if self.operational_days is None
                           else OperationalPolicy(days=self.operational_days))
            aiact = (base.aiact if self.aiact_years is None
                     else AiActPolicy(years=self.aiact_years, override_reason=self.override_reason))
        except ValidationError as exc:
            raise JobInputError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        return base.model_copy(update={"personal": personal, "operational": operational, "aiact": aiact})
