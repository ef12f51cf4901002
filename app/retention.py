"""``sovtel retention|audit|aiact``: retention enforcement, GDPR erasure, audit checks and the AI-Act store.

Exit codes: 0 success, 1 the job found problems (rows left, checks failed, ledger tampered) or the store
failed, 2 bad input (usage, configuration, a record refused as personal data).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.store import store_from_url
from retention.aiact import AiActStore, Evaluation, Incident, ModelVersion
from retention.audit import AuditContext, run_audit
from retention.checkpoints import CheckpointError, generate_key, load_public_key, load_signing_key
from retention.config import AuditConfig, JobsConfig, JobsConfigError, load_jobs_config
from retention.enforce import apply, status
from retention.erasure import ErasureError, Tier, default_receipt_key, erase, read_subject_file
from retention.guard import NerMode, PersonalDataError, PiiGuard
from retention.ledger import Ledger, LedgerEntry, LedgerError, verify_ledger
from retention.metrics import ComplianceMetrics
from retention.policies import AiActPolicy, OperationalPolicy, PersonalPolicy, RetentionPolicies
from retention.report import write_report
from retention.tables import CatalogError, quote_identifier
from sovtel.config import SecretError, resolve_secret
from storage.backend import Store, StoreConfig, StoreError, StoreLocation

EXIT_FOUND = 1
EXIT_BAD_INPUT = 2

F = TypeVar("F", bound=Callable[..., Any])


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sovtel: {message}", err=True)
    sys.exit(code)


def _store_options(fn: F) -> F:
    options = (
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Jobs configuration (tier stores, AI-Act store, policies, audit settings)."),
        click.option("--store", "store_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Embedded store directory (repeatable)."),
        click.option("--url", "urls", multiple=True,
                     help="ClickHouse URL http(s)://user@host:port or chdb:///dir (repeatable)."),
        click.option("--user", help="User name for --url."),
        click.option("--password-env", help="Environment variable holding the password for --url."),
        click.option("--database", "databases", multiple=True,
                     help="Tier database in every store given (repeatable; default sovtel)."),
        click.option("--aiact-database", help="The AI-Act database (default aiact)."),
        click.option("--actor", help="Who ledger entries name: a role such as 'dpo' or 'retention-cron'."),
        click.option("--ner", type=click.Choice(["auto", "required", "off"]),
                     help="spaCy person-name NER in PII scans (default from config: auto)."),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


def _checkpoint_options(fn: F) -> F:
    options = (
        click.option("--checkpoints", "checkpoint_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Directory of signed ledger checkpoints (outside the store)."),
        click.option("--signing-key", help="Ed25519 signing key by reference: env:NAME or file:PATH."),
        click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
                     help="PEM public key to verify checkpoints (default: derived from --signing-key)."),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass
class Session:
    """The stores, databases, ledger and configuration one command works with."""

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

    def close(self) -> None:
        """Close every store opened."""
        for store in self.stores:
            store.close()


def _open_location(location: StoreLocation, cache: dict[str, Store]) -> Store:
    key = location.describe()
    if key not in cache:
        cache[key] = Store.from_config(StoreConfig(**{n: getattr(location, n) for n in StoreLocation.model_fields}))
    return cache[key]


def _open_url(url: str, user: str | None, password_env: str | None, cache: dict[str, Store]) -> Store:
    if url.startswith("chdb://"):
        return _open_location(StoreConfig(dsn=url), cache)
    try:
        store = store_from_url(url, user, password_env)
    except click.BadParameter as exc:
        _fail(EXIT_BAD_INPUT, exc.format_message())
    cache.setdefault(store.target, store)
    return cache[store.target]


@contextlib.contextmanager
def open_session(
    *,
    config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...], user: str | None,
    password_env: str | None, databases: tuple[str, ...], aiact_database: str | None, actor: str | None,
    ner: str | None,
) -> Iterator[Session]:
    """Resolve the command line and configuration into open stores; exits 2 on bad input."""
    try:
        config = load_jobs_config(config_path) if config_path is not None else JobsConfig()
    except JobsConfigError as exc:
        for line in exc.errors:
            click.echo(f"{exc.source}: {line}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for name in (*databases, *([aiact_database] if aiact_database else [])):
        try:
            quote_identifier(name)
        except CatalogError as exc:
            _fail(EXIT_BAD_INPUT, f"database {exc}")
    cache: dict[str, Store] = {}
    tiers: list[Tier] = []
    if store_dirs or urls:
        if (user or password_env) and not urls:
            _fail(EXIT_BAD_INPUT, "--user and --password-env only apply to --url")
        stores: list[Store] = []
        for directory in store_dirs:
            if not directory.is_dir():
                _fail(EXIT_BAD_INPUT, f"--store {directory}: no such directory")
            stores.append(_open_location(StoreConfig(path=directory), cache))
        stores.extend(_open_url(u, user, password_env, cache) for u in urls)
        for store in stores:
            tiers.extend(Tier(store, db) for db in (databases or ("sovtel",)))
    elif config.tiers:
        for tier in config.tiers:
            store = _open_location(tier, cache)
            tiers.extend(Tier(store, db) for db in (databases or tier.databases))
    else:
        _fail(EXIT_BAD_INPUT, "give --store DIR, --url URL or --config FILE with tiers")
    location = config.aiact
    has_location = any(getattr(location, n) is not None for n in ("path", "dsn", "host"))
    aiact_store = _open_location(location, cache) if has_location else tiers[0].store
    aiact_db = aiact_database or location.database
    guard = PiiGuard(ner=_ner_mode(ner or config.audit.ner))
    try:
        ledger = Ledger(aiact_store, aiact_db, actor=actor or config.ledger.actor, guard=guard)
    except CatalogError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    session = Session(config, tiers, aiact_store, aiact_db, ledger, guard, list(cache.values()))
    try:
        yield session
    finally:
        session.close()


def _by_store(session: Session) -> list[tuple[Store, list[str]]]:
    """The tier databases grouped by store; a separate AI-Act store comes last with no tier database."""
    groups: dict[int, tuple[Store, list[str]]] = {}
    for tier in session.tiers:
        groups.setdefault(id(tier.store), (tier.store, []))[1].append(tier.database)
    if id(session.aiact_store) not in groups:
        groups[id(session.aiact_store)] = (session.aiact_store, [])
    return list(groups.values())


_SESSION_ARGS = ("config_path", "store_dirs", "urls", "user", "password_env", "databases", "aiact_database", "actor",
                 "ner")


def _session_args(args: dict[str, Any]) -> dict[str, Any]:
    """The ``open_session`` arguments among a command's parameters."""
    return {name: args[name] for name in _SESSION_ARGS}


def _ner_mode(value: str) -> NerMode:
    if value == "required":
        return "required"
    return "off" if value == "off" else "auto"


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich progress line on stderr; the callback names the step now running."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not enabled) as progress:
        task = progress.add_task("starting", total=None)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        yield step


def _keys(checkpoint_dir: Path | None, signing_key: str | None, public_key: Path | None,
          config: JobsConfig) -> tuple[Path | None, Any, Any]:
    """(checkpoint dir, private key or None, public key or None) from options, else the configuration."""
    directory = checkpoint_dir or config.ledger.checkpoint_dir
    ref = signing_key or config.ledger.signing_key
    pub_path = public_key or config.ledger.public_key
    try:
        private = load_signing_key(ref, resolve_secret) if ref else None
        public = load_public_key(pub_path) if pub_path else (private.public_key() if private else None)
    except CheckpointError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    return directory, private, public


def _store_failed(exc: Exception) -> NoReturn:
    _fail(EXIT_FOUND, f"store failed: {exc}")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# --------------------------------------------------------------------------------------------- retention


def _policies(config: JobsConfig, personal_days: int | None, operational_days: int | None,
              aiact_years: int | None, override_reason: str | None) -> RetentionPolicies:
    base = config.retention
    try:
        personal = base.personal if personal_days is None and override_reason is None else PersonalPolicy(
            days=personal_days if personal_days is not None else base.personal.days,
            override_reason=override_reason or base.personal.override_reason)
        operational = base.operational if operational_days is None else OperationalPolicy(days=operational_days)
        aiact = base.aiact if aiact_years is None else AiActPolicy(years=aiact_years, override_reason=override_reason)
        return base.model_copy(update={"personal": personal, "operational": operational, "aiact": aiact})
    except ValidationError as exc:
        _fail(EXIT_BAD_INPUT, "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()))


def _policy_options(fn: F) -> F:
    options = (
        click.option("--personal-days", type=int, help="Personal telemetry retention (30-90 days)."),
        click.option("--operational-days", type=int, help="Operational series retention in days."),
        click.option("--aiact-years", type=int, help="AI-Act store retention in years (at least 10)."),
        click.option("--override-reason", help="Why a retention is outside its allowed range (kept in the ledger)."),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("retention")
def retention_group() -> None:
    """Retention policies (TTL), their enforcement, status, and GDPR erasure by data subject."""


@retention_group.command("apply")
@_store_options
@_policy_options
@_checkpoint_options
@click.option("--no-aggregate", is_flag=True, help="Do not aggregate spans into usage_daily first.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--metrics-textfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Write Prometheus gauges here (node_exporter textfile collector).")
def apply_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...], user: str | None,
                  password_env: str | None, databases: tuple[str, ...], aiact_database: str | None,
                  actor: str | None, ner: str | None, personal_days: int | None, operational_days: int | None,
                  aiact_years: int | None, override_reason: str | None, checkpoint_dir: Path | None,
                  signing_key: str | None, public_key: Path | None, no_aggregate: bool, as_json: bool,
                  metrics_textfile: Path | None) -> None:
    """Enforce the policies now: set table TTLs, remove rows past their policy, record it in the ledger."""
    with open_session(**_session_args(locals())) as session:
        policies = _policies(session.config, personal_days, operational_days, aiact_years, override_reason)
        directory, private, _ = _keys(checkpoint_dir, signing_key, public_key, session.config)

        def anchor(entry: LedgerEntry) -> bool:
            if directory is None or private is None:
                return False
            from retention.checkpoints import sign_checkpoint, write_checkpoint
            from retention.ledger import format_timestamp

            write_checkpoint(directory, sign_checkpoint(session.aiact_database, entry.seq, entry.hash,
                                                        format_timestamp(entry.timestamp), key=private))
            return True

        reports = []
        try:
            with _progress(not as_json) as step:
                groups = _by_store(session)
                for store, dbs in groups:
                    aiact_db = session.aiact_database if store is session.aiact_store else None
                    reports.append(apply(store, dbs, aiact_db, policies, ledger=session.ledger,
                                         aiact=session.aiact(), aggregate=not no_aggregate and bool(dbs),
                                         anchor=anchor, progress=step))
                if directory is not None and private is not None:
                    session.ledger.checkpoint(directory, private)
        except (StoreError, CatalogError, LedgerError) as exc:
            _store_failed(exc)
        except PersonalDataError as exc:
            _fail(EXIT_FOUND, str(exc))
    if metrics_textfile is not None:
        metrics = ComplianceMetrics(CollectorRegistry())
        for report in reports:
            metrics.publish_apply(report)
        metrics.write_textfile(metrics_textfile)
    if as_json:
        _echo_json([r.as_json() for r in reports])
    else:
        table = Table("table", "stream", "policy", "TTL changed", "partitions dropped", "rows removed",
                      "rows still overdue", title="retention apply")
        for report in reports:
            for t in report.tables:
                table.add_row(t.table, t.stream, t.policy, "yes" if t.ttl_changed else "", str(t.partitions_dropped),
                              str(t.rows_removed), str(t.rows_remaining_expired) + (f" ({t.error})" if t.error else ""))
        Console().print(table)
        for report in reports:
            if report.aggregates and report.aggregates.rows:
                click.echo(f"aggregated {report.aggregates.rows} usage row(s) for "
                           + ", ".join(f"{db}: {len(days)} day(s)" for db, days in report.aggregates.days.items()))
            click.echo(f"{report.rows_removed} row(s) removed; recorded as ledger entry {report.ledger_seq}")
    if not all(r.ok for r in reports):
        sys.exit(EXIT_FOUND)


@retention_group.command("status")
@_store_options
@_policy_options
@click.option("--grace-hours", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Slack before a row counts as overdue.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                   user: str | None, password_env: str | None, databases: tuple[str, ...],
                   aiact_database: str | None, actor: str | None, ner: str | None, personal_days: int | None,
                   operational_days: int | None, aiact_years: int | None, override_reason: str | None,
                   grace_hours: float, as_json: bool) -> None:
    """Show the oldest row of every table against its policy."""
    with open_session(**_session_args(locals())) as session:
        policies = _policies(session.config, personal_days, operational_days, aiact_years, override_reason)
        rows = []
        try:
            for store, dbs in _by_store(session):
                aiact_db = session.aiact_database if store is session.aiact_store else None
                rows.extend(status(store, dbs, aiact_db, policies, grace_hours))
        except (StoreError, CatalogError) as exc:
            _store_failed(exc)
    if as_json:
        _echo_json([r.as_json() for r in rows])
        return
    table = Table("table", "stream", "policy", "TTL", "rows", "oldest row", "age (days)", "overdue rows", "status",
                  title="retention status")
    for r in rows:
        style = {"overdue": "red", "ttl-differs": "yellow", "no-ttl": "yellow"}.get(r.status, "green")
        table.add_row(f"{r.database}.{r.table}", r.stream, r.policy, r.ttl or "none", str(r.rows), r.oldest or "",
                      "" if r.oldest_age_days is None else f"{r.oldest_age_days:g}", str(r.expired_rows),
                      f"[{style}]{r.status}[/{style}]")
    Console().print(table)


@retention_group.command("erase")
@_store_options
@click.option("--subject", "subjects", multiple=True, help="A data subject's id as the application knows it.")
@click.option("--subject-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File of subject ids, one per line.")
@click.option("--keyring", type=click.Path(dir_okay=False, path_type=Path),
              help="Key ring of the pseudonymisation keys (every node key and pepper).")
@click.option("--no-pseudonyms", is_flag=True, help="The stores hold identifiers in clear: erase without a key ring.")
@click.option("--receipt-key", help="HMAC key of receipts, by reference (default: the ring's active pepper).")
@click.option("--digest-hex", type=click.IntRange(16, 64), help="Hex digits the pseudonymiser keeps (default 32).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipts as JSON.")
def erase_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...], user: str | None,
                  password_env: str | None, databases: tuple[str, ...], aiact_database: str | None,
                  actor: str | None, ner: str | None, subjects: tuple[str, ...], subject_file: Path | None,
                  keyring: Path | None, no_pseudonyms: bool, receipt_key: str | None, digest_hex: int | None,
                  as_json: bool) -> None:
    """Erase data subjects from every personal table of every tier; exit 1 if anything remains."""
    from processors.keyring import KeyRing, KeyRingError

    with open_session(**_session_args(locals())) as session:
        ids = list(subjects)
        try:
            if subject_file is not None:
                ids.extend(read_subject_file(subject_file))
        except ErasureError as exc:
            _fail(EXIT_BAD_INPUT, str(exc))
        if not ids:
            _fail(EXIT_BAD_INPUT, "give --subject ID or --subject-file FILE")
        ring_path = keyring or session.config.erasure.keyring
        if ring_path is None and not no_pseudonyms:
            _fail(EXIT_BAD_INPUT, "give --keyring FILE (stored ids are pseudonyms), or --no-pseudonyms if the "
                                  "stores hold identifiers in clear")
        try:
            ring = KeyRing.load(ring_path) if ring_path is not None else None
            key_ref = receipt_key or session.config.erasure.receipt_key
            if key_ref is not None:
                key, key_id = resolve_secret(key_ref).encode(), "receipt-key"
            elif ring is not None:
                key, key_id = default_receipt_key(ring)
            else:
                _fail(EXIT_BAD_INPUT, "give --receipt-key env:NAME|file:PATH (receipts are keyed hashes)")
            with _progress(not as_json) as step:
                reports = erase(ids, session.tiers, session.ledger, ring=ring, receipt_key=key,
                                receipt_key_id=key_id,
                                digest_hex=digest_hex or session.config.erasure.digest_hex, progress=step)
        except (KeyRingError, ErasureError, SecretError, ValueError) as exc:
            _fail(EXIT_BAD_INPUT, str(exc))
        except (StoreError, LedgerError) as exc:
            _store_failed(exc)
    if as_json:
        _echo_json([r.as_json() for r in reports])
    else:
        for r in reports:
            state = "complete" if r.complete else "INCOMPLETE"
            click.echo(f"subject {r.subject_hmac[:16]}…: {r.rows_deleted} row(s) deleted in "
                       f"{len(r.tables)} table(s), {r.rows_remaining} remaining ({state}); receipt = ledger entry "
                       f"{r.ledger_seq}")
            for t in r.tables:
                click.echo(f"  {t.database}.{t.table}: deleted {t.deleted}, remaining {t.remaining}"
                           + (f" (error: {t.error})" if t.error else ""))
    if not all(r.complete for r in reports):
        sys.exit(EXIT_FOUND)


# ------------------------------------------------------------------------------------------------- audit


@click.group("audit")
def audit_group() -> None:
    """Audit checks, ledger verification and signed checkpoints."""


@audit_group.command("run")
@_store_options
@_checkpoint_options
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the evidence report (self-contained HTML) here.")
@click.option("--metrics-textfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Write Prometheus gauges here (node_exporter textfile collector).")
@click.option("--pushgateway", help="Also push the gauges to this Prometheus Pushgateway.")
@click.option("--lookback-hours", type=click.FloatRange(min=0, min_open=True), help="Window of the data checks.")
@click.option("--heartbeat-gap-s", type=click.FloatRange(min=0, min_open=True), help="Longest allowed silence.")
@click.option("--grace-hours", type=click.FloatRange(min=0), help="Retention slack before a row is overdue.")
@click.option("--pii-sample-rows", type=click.IntRange(min=1), help="Rows sampled per table by the PII scan.")
def audit_run_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                      user: str | None, password_env: str | None, databases: tuple[str, ...],
                      aiact_database: str | None, actor: str | None, ner: str | None, checkpoint_dir: Path | None,
                      signing_key: str | None, public_key: Path | None, as_json: bool, html_path: Path | None,
                      metrics_textfile: Path | None, pushgateway: str | None, lookback_hours: float | None,
                      heartbeat_gap_s: float | None, grace_hours: float | None,
                      pii_sample_rows: int | None) -> None:
    """Run every audit check; record the result in the ledger; exit 1 on any failure."""
    with open_session(**_session_args(locals())) as session:
        directory, private, public = _keys(checkpoint_dir, signing_key, public_key, session.config)
        overrides = {k: v for k, v in (("lookback_hours", lookback_hours), ("heartbeat_gap_s", heartbeat_gap_s),
                                       ("retention_grace_hours", grace_hours), ("pii_sample_rows", pii_sample_rows))
                     if v is not None}
        audit_config = AuditConfig(**{**session.config.audit.model_dump(), **overrides})
        ctx = AuditContext(session.tiers, session.aiact_store, session.aiact_database, session.ledger,
                           session.config.retention, audit_config, session.guard, directory, public)
        try:
            with _progress(not as_json) as step:
                step("running audit checks")
                run = run_audit(ctx)
                if directory is not None and private is not None:
                    session.ledger.checkpoint(directory, private)
        except (StoreError, CatalogError, LedgerError) as exc:
            _store_failed(exc)
    metrics = ComplianceMetrics(CollectorRegistry())
    metrics.publish_audit(run, time.time())
    if metrics_textfile is not None:
        metrics.write_textfile(metrics_textfile)
    if pushgateway:
        try:
            metrics.push(pushgateway)
        except OSError as exc:
            click.echo(f"sovtel audit run: pushing metrics failed: {exc}", err=True)
    if html_path is not None:
        write_report(run, html_path)
    if as_json:
        _echo_json(run.as_json())
    else:
        table = Table("check", "result", "findings", "summary", title=f"audit run {run.run_id}")
        for r in run.results:
            colour = {"pass": "green", "fail": "red", "error": "yellow"}.get(r.status, "white")
            table.add_row(r.title, f"[{colour}]{r.status}[/{colour}]", str(r.findings), r.summary)
        Console().print(table)
        click.echo(f"ledger entry {run.ledger_seq}, head hash {run.ledger_head_hash}")
    if not run.ok:
        sys.exit(EXIT_FOUND)


@audit_group.command("verify")
@_store_options
@_checkpoint_options
@click.option("--json", "as_json", is_flag=True, help="Print the verification as JSON.")
def verify_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                   user: str | None, password_env: str | None, databases: tuple[str, ...],
                   aiact_database: str | None, actor: str | None, ner: str | None, checkpoint_dir: Path | None,
                   signing_key: str | None, public_key: Path | None, as_json: bool) -> None:
    """Verify the ledger's hash chain against the signed checkpoints; exit 1 on any problem."""
    import secrets

    with open_session(**_session_args(locals())) as session:
        directory, _, public = _keys(checkpoint_dir, signing_key, public_key, session.config)
        if directory is not None and public is None:
            _fail(EXIT_BAD_INPUT, "checkpoints need --public-key FILE or --signing-key REF to be verified")
        try:
            if not session.ledger.exists():
                _fail(EXIT_FOUND, f"no ledger in {session.aiact_database} ({session.aiact_store.target})")
            # Verifying reads the ledger: the read is itself recorded first (it joins the chain verified).
            session.ledger.append("access", {"source": "sovtel audit verify", "access_id": secrets.token_hex(8),
                                             "reads": {"aiact": session.aiact_database}})
            result = verify_ledger(session.ledger, directory, public)
        except (StoreError, LedgerError) as exc:
            _store_failed(exc)
    if as_json:
        _echo_json(result.as_json())
    else:
        for p in result.problems:
            click.echo(f"PROBLEM [{p.kind}] {p.message}")
        for note in result.notes:
            click.echo(f"note: {note}")
        state = "verified" if result.ok else f"FAILED ({len(result.problems)} problem(s))"
        click.echo(f"ledger {session.aiact_database}: {result.entries} entries, head seq {result.head_seq}, "
                   f"head hash {result.head_hash}, {result.checkpoints} checkpoint(s): {state}")
    if not result.ok:
        sys.exit(EXIT_FOUND)


@audit_group.command("checkpoint")
@_store_options
@_checkpoint_options
def checkpoint_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                       user: str | None, password_env: str | None, databases: tuple[str, ...],
                       aiact_database: str | None, actor: str | None, ner: str | None, checkpoint_dir: Path | None,
                       signing_key: str | None, public_key: Path | None) -> None:
    """Sign the ledger head now and write the checkpoint outside the store."""
    with open_session(**_session_args(locals())) as session:
        directory, private, _ = _keys(checkpoint_dir, signing_key, public_key, session.config)
        if directory is None or private is None:
            _fail(EXIT_BAD_INPUT, "give --checkpoints DIR and --signing-key REF (or set them in the config)")
        try:
            cp = session.ledger.checkpoint(directory, private)
        except (StoreError, LedgerError) as exc:
            _store_failed(exc)
    if cp is None:
        _fail(EXIT_FOUND, "the ledger is empty: nothing to checkpoint")
    click.echo(f"checkpoint {directory / cp.filename}: seq {cp.seq}, hash {cp.hash}, key {cp.key_id}")


@audit_group.command("keygen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="ledger-signing", show_default=True)
def keygen_command(out_dir: Path, name: str) -> None:
    """Create an Ed25519 key pair for checkpoints (private key mode 0600; never overwritten)."""
    try:
        private, public = generate_key(out_dir, name)
    except FileExistsError:
        _fail(EXIT_BAD_INPUT, f"{out_dir / (name + '.pem')} exists already")
    click.echo(f"private key {private} (reference it as file:{private}); public key {public}")


# ------------------------------------------------------------------------------------------------- aiact


@click.group("aiact")
def aiact_group() -> None:
    """The AI-Act store: model documentation, evaluations, incidents, usage aggregates, export."""


def _text_or_file(value: str | None) -> str:
    """``@path`` reads the file; anything else is the value itself."""
    if value is None:
        return ""
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            _fail(EXIT_BAD_INPUT, f"{value}: cannot read ({exc.strerror})")
    return value


def _json_object(value: str | None, option: str) -> dict[str, Any]:
    text = _text_or_file(value)
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        _fail(EXIT_BAD_INPUT, f"{option}: not JSON or YAML")
    if not isinstance(data, dict):
        _fail(EXIT_BAD_INPUT, f"{option}: must be a JSON/YAML object")
    return data


def _write_record(session: Session, write: Callable[[AiActStore], LedgerEntry]) -> LedgerEntry:
    try:
        return write(session.aiact())
    except PersonalDataError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    except (StoreError, LedgerError) as exc:
        _store_failed(exc)


def _validated(cls: Any, **fields: Any) -> Any:
    try:
        return cls(**fields)
    except ValidationError as exc:
        _fail(EXIT_BAD_INPUT, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))


@aiact_group.command("register-model")
@_store_options
@click.option("--model", required=True, help="Model name as spans report it (gen_ai.response.model).")
@click.option("--version", "version", required=True, help="Version label.")
@click.option("--provider", default="", help="Provider or serving stack.")
@click.option("--hyperparameters", help="JSON/YAML object, or @FILE.")
@click.option("--training-data", help="Description of the training data (not the data), or @FILE.")
@click.option("--deployment-config", help="JSON/YAML object, or @FILE.")
@click.option("--documentation", help="Technical documentation text or @FILE (only its SHA-256 is stored).")
@click.option("--recorded-by", default="sovtel", show_default=True, help="A role, not a person's name.")
def register_model_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                           user: str | None, password_env: str | None, databases: tuple[str, ...],
                           aiact_database: str | None, actor: str | None, ner: str | None, model: str,
                           version: str, provider: str, hyperparameters: str | None, training_data: str | None,
                           deployment_config: str | None, documentation: str | None, recorded_by: str) -> None:
    """Record a model version's documentation in the AI-Act store (refused if it holds personal data)."""
    mv = _validated(ModelVersion, model=model, version=version, provider=provider,
                    hyperparameters=_json_object(hyperparameters, "--hyperparameters"),
                    training_data=_text_or_file(training_data),
                    deployment_config=_json_object(deployment_config, "--deployment-config"),
                    documentation=_text_or_file(documentation), recorded_by=recorded_by)
    with open_session(**_session_args(locals())) as session:
        entry = _write_record(session, lambda a: a.register_model(mv))
    click.echo(f"registered {model} {version}; ledger entry {entry.seq}")


@aiact_group.command("record-evaluation")
@_store_options
@click.option("--model", required=True)
@click.option("--version", "version", required=True)
@click.option("--suite", required=True, help="Evaluation suite name.")
@click.option("--metric", required=True)
@click.option("--value", required=True, type=float)
@click.option("--threshold", type=float)
@click.option("--passed/--failed", default=None, help="Whether the result met its threshold.")
@click.option("--dataset", default="", help="Description of the evaluation data (not the data).")
def record_evaluation_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                              user: str | None, password_env: str | None, databases: tuple[str, ...],
                              aiact_database: str | None, actor: str | None, ner: str | None, model: str,
                              version: str, suite: str, metric: str, value: float, threshold: float | None,
                              passed: bool | None, dataset: str) -> None:
    """Record an evaluation result of a model version."""
    ev = _validated(Evaluation, model=model, version=version, suite=suite, metric=metric, value=value,
                    threshold=threshold, passed=passed, dataset=dataset)
    with open_session(**_session_args(locals())) as session:
        entry = _write_record(session, lambda a: a.record_evaluation(ev))
    click.echo(f"recorded {suite}/{metric} for {model} {version}; ledger entry {entry.seq}")


@aiact_group.command("record-incident")
@_store_options
@click.option("--id", "incident_id", required=True)
@click.option("--model", required=True)
@click.option("--version", "version", default="")
@click.option("--severity", type=click.Choice(["low", "medium", "high", "serious"]), default="medium",
              show_default=True)
@click.option("--status", "state", type=click.Choice(["open", "mitigated", "closed"]), default="open",
              show_default=True)
@click.option("--summary", required=True)
@click.option("--details", default="", help="Text or @FILE.")
@click.option("--reported-by", default="sovtel", show_default=True, help="A role, not a person's name.")
def record_incident_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                            user: str | None, password_env: str | None, databases: tuple[str, ...],
                            aiact_database: str | None, actor: str | None, ner: str | None, incident_id: str,
                            model: str, version: str, severity: str, state: str, summary: str, details: str,
                            reported_by: str) -> None:
    """Record an incident or a change of its status."""
    inc = _validated(Incident, incident_id=incident_id, model=model, version=version, severity=severity,
                     status=state, summary=summary, details=_text_or_file(details), reported_by=reported_by)
    with open_session(**_session_args(locals())) as session:
        entry = _write_record(session, lambda a: a.record_incident(inc))
    click.echo(f"recorded incident {incident_id} ({severity}, {state}); ledger entry {entry.seq}")


@aiact_group.command("aggregate")
@_store_options
def aggregate_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                      user: str | None, password_env: str | None, databases: tuple[str, ...],
                      aiact_database: str | None, actor: str | None, ner: str | None) -> None:
    """Aggregate every complete day of the tiers' spans into usage_daily (each day once per tier)."""
    from retention.aiact import AggregateReport

    with open_session(**_session_args(locals())) as session:
        report = AggregateReport()
        try:
            for tier in session.tiers:
                session.aiact().aggregate_usage(tier.store, tier.database, report=report)
        except PersonalDataError as exc:
            _fail(EXIT_FOUND, str(exc))
        except (StoreError, LedgerError) as exc:
            _store_failed(exc)
    days = sum(len(d) for d in report.days.values())
    click.echo(f"{report.rows} usage row(s) for {days} day(s)" + (f"; ledger entry {report.ledger_seq}"
                                                                   if report.ledger_seq else ""))


@aiact_group.command("export")
@_store_options
@_checkpoint_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_command(*, config_path: Path | None, store_dirs: tuple[Path, ...], urls: tuple[str, ...],
                   user: str | None, password_env: str | None, databases: tuple[str, ...],
                   aiact_database: str | None, actor: str | None, ner: str | None, checkpoint_dir: Path | None,
                   signing_key: str | None, public_key: Path | None, out_dir: Path) -> None:
    """Write a machine-readable bundle of the AI-Act store for an auditor (manifest with SHA-256 per file)."""
    import secrets

    with open_session(**_session_args(locals())) as session:
        directory, private, public = _keys(checkpoint_dir, signing_key, public_key, session.config)
        try:
            session.ledger.append("access", {"source": "sovtel aiact export", "access_id": secrets.token_hex(8),
                                             "reads": {"aiact": session.aiact_database}})
            verification = verify_ledger(session.ledger, directory, public)
            manifest = session.aiact().export(out_dir, verification, checkpoint_dir=directory, signing_key=private,
                                              public_key_file=public_key or session.config.ledger.public_key)
        except (StoreError, LedgerError) as exc:
            _store_failed(exc)
    state = "verified" if verification.ok else f"NOT verified ({len(verification.problems)} problem(s))"
    click.echo(f"exported to {out_dir}: manifest {manifest.name}; ledger {verification.entries} entries, {state}")
    if not verification.ok:
        sys.exit(EXIT_FOUND)
