"""``sovtel retention|audit|aiact``: retention enforcement, GDPR erasure, audit checks and the AI-Act store.

Exit codes: 0 success, 1 the job found problems (rows left, checks failed, ledger tampered) or the store
failed, 2 bad input (usage, configuration, a record refused as personal data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.store import store_from_url
from processors.keyring import KeyRingError
from retention.aiact import Evaluation, Incident, ModelVersion
from retention.aiact_jobs import aggregate_usage, export_aiact, record_evaluation, record_incident, register_model
from retention.audit_jobs import (
    AuditOutputs,
    AuditThresholds,
    run_audit_job,
    sign_ledger_head,
    verify_ledger_job,
)
from retention.checkpoints import CheckpointError, generate_key
from retention.config import JobsConfig, JobsConfigError, load_jobs_config
from retention.erasure import ErasureError
from retention.guard import NerMode, PersonalDataError
from retention.jobs import ApplyOptions, EraseOptions, apply_retention, erase_subjects, retention_status
from retention.ledger import LedgerError, LedgerTamperedError
from retention.session import (
    CheckpointOptions,
    JobInputError,
    JobProblem,
    JobSession,
    PolicyOverrides,
    SessionOptions,
    check_database_names,
    open_session,
)
from retention.tables import CatalogError
from sovtel.config import SecretError
from storage.backend import Store, StoreConfig, StoreError, StoreLocation

EXIT_FOUND = 1
EXIT_BAD_INPUT = 2

F = TypeVar("F", bound=Callable[..., Any])


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sovtel: {message}", err=True)
    sys.exit(code)


def _bundle(name: str, build: type[Any], options: tuple[Callable[[F], F], ...]) -> Callable[[F], F]:
    """Add ``options`` to a command and hand them to it as one argument ``name``, a ``build`` dataclass."""
    names = tuple(f.name for f in dataclasses.fields(build))

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            kwargs[name] = build(**{n: kwargs.pop(n) for n in names})
            return fn(**kwargs)

        wrapped: F = command  # type: ignore[assignment]
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


@dataclass(frozen=True)
class Where:
    """The command line's store options, as given."""

    config_path: Path | None
    store_dirs: tuple[Path, ...]
    urls: tuple[str, ...]
    user: str | None
    password_env: str | None
    databases: tuple[str, ...]
    aiact_database: str | None
    actor: str | None
    ner: str | None


_store_options = _bundle("where", Where, (
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
))

_checkpoint_options = _bundle("checkpoints", CheckpointOptions, (
    click.option("--checkpoints", "directory", type=click.Path(file_okay=False, path_type=Path),
                 help="Directory of signed ledger checkpoints (outside the store)."),
    click.option("--signing-key", help="Ed25519 signing key by reference: env:NAME or file:PATH."),
    click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
                 help="PEM public key to verify checkpoints (default: derived from --signing-key)."),
))

_policy_options = _bundle("policies", PolicyOverrides, (
    click.option("--personal-days", type=int, help="Personal telemetry retention (30-90 days)."),
    click.option("--operational-days", type=int, help="Operational series retention in days."),
    click.option("--aiact-years", type=int, help="AI-Act store retention in years (at least 10)."),
    click.option("--override-reason", help="Why a retention is outside its allowed range (kept in the ledger)."),
))


def _ner_mode(value: str | None) -> NerMode | None:
    if value is None:
        return None
    if value == "required":
        return "required"
    return "off" if value == "off" else "auto"


def _tier_stores(where: Where, config: JobsConfig) -> tuple[StoreLocation | Store, ...]:
    """The stores the options name (checked, not yet opened); exits 2 on bad input."""
    if not (where.store_dirs or where.urls):
        if not config.tiers:
            _fail(EXIT_BAD_INPUT, "give --store DIR, --url URL or --config FILE with tiers")
        return ()
    if (where.user or where.password_env) and not where.urls:
        _fail(EXIT_BAD_INPUT, "--user and --password-env only apply to --url")
    stores: list[StoreLocation | Store] = []
    for directory in where.store_dirs:
        if not directory.is_dir():
            _fail(EXIT_BAD_INPUT, f"--store {directory}: no such directory")
        stores.append(StoreConfig(path=directory))
    for url in where.urls:
        if url.startswith("chdb://"):
            stores.append(StoreConfig(dsn=url))
            continue
        try:
            stores.append(store_from_url(url, where.user, where.password_env))
        except click.BadParameter as exc:
            _fail(EXIT_BAD_INPUT, exc.format_message())
    return tuple(stores)


@contextlib.contextmanager
def _session(where: Where) -> Iterator[JobSession]:
    """The job session the options name, closed on the way out; exits 2 on bad input."""
    try:
        config = load_jobs_config(where.config_path) if where.config_path is not None else JobsConfig()
    except JobsConfigError as exc:
        for line in exc.errors:
            click.echo(f"{exc.source}: {line}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        check_database_names((*where.databases, *([where.aiact_database] if where.aiact_database else [])))
        stores = _tier_stores(where, config)
        session = open_session(SessionOptions(config, stores, where.databases, where.aiact_database, where.actor,
                                              _ner_mode(where.ner)))
    except JobInputError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    with session:
        yield session


@contextlib.contextmanager
def _outcome(bad_input: tuple[type[Exception], ...] = (), found: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Map a job's errors to exit codes: 2 for bad input, 1 for problems found and store failures."""
    bad: tuple[type[Exception], ...] = (JobInputError, CheckpointError, *bad_input)
    problem: tuple[type[Exception], ...] = (JobProblem, *found)
    try:
        yield
    except bad as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    except problem as exc:
        _fail(EXIT_FOUND, str(exc))
    except LedgerTamperedError as exc:
        _fail(EXIT_FOUND, str(exc))
    except (StoreError, CatalogError, LedgerError) as exc:
        _fail(EXIT_FOUND, f"store failed: {exc}")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich progress line on stderr; the callback names the step now running."""
    console = Console(stderr=True)
    # Only on a terminal: elsewhere the spinner would leave a blank line before an error's one line.
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not (enabled and console.is_terminal)) as progress:
        task = progress.add_task("starting", total=None)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        yield step


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# --------------------------------------------------------------------------------------------- retention


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
def apply_command(*, where: Where, policies: PolicyOverrides, checkpoints: CheckpointOptions, no_aggregate: bool,
                  as_json: bool, metrics_textfile: Path | None) -> None:
    """Enforce the policies now: set table TTLs, remove rows past their policy, record it in the ledger."""
    options = ApplyOptions(policies, checkpoints, aggregate=not no_aggregate, metrics_textfile=metrics_textfile)
    with _session(where) as session, _outcome(found=(PersonalDataError,)), _progress(not as_json) as step:
        result = apply_retention(session, options, step)
    if as_json:
        _echo_json([r.as_json() for r in result.reports])
    else:
        table = Table("table", "stream", "policy", "TTL changed", "partitions dropped", "rows removed",
                      "rows still overdue", title="retention apply")
        for report in result.reports:
            for t in report.tables:
                table.add_row(t.table, t.stream, t.policy, "yes" if t.ttl_changed else "", str(t.partitions_dropped),
                              str(t.rows_removed), str(t.rows_remaining_expired) + (f" ({t.error})" if t.error else ""))
        Console().print(table)
        for report in result.reports:
            if report.aggregates and report.aggregates.rows:
                click.echo(f"aggregated {report.aggregates.rows} usage row(s) for "
                           + ", ".join(f"{db}: {len(days)} day(s)" for db, days in report.aggregates.days.items()))
            click.echo(f"{report.rows_removed} row(s) removed; recorded as ledger entry {report.ledger_seq}")
    if not result.ok:
        sys.exit(EXIT_FOUND)


@retention_group.command("status")
@_store_options
@_policy_options
@click.option("--grace-hours", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Slack before a row counts as overdue.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(*, where: Where, policies: PolicyOverrides, grace_hours: float, as_json: bool) -> None:
    """Show the oldest row of every table against its policy."""
    with _session(where) as session, _outcome():
        rows = retention_status(session, policies, grace_hours)
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
def erase_command(*, where: Where, subjects: tuple[str, ...], subject_file: Path | None, keyring: Path | None,
                  no_pseudonyms: bool, receipt_key: str | None, digest_hex: int | None, as_json: bool) -> None:
    """Erase data subjects from every personal table of every tier; exit 1 if anything remains."""
    options = EraseOptions(subjects, subject_file, keyring, no_pseudonyms, receipt_key, digest_hex)
    bad_input = (KeyRingError, ErasureError, SecretError, ValueError)
    with _session(where) as session, _outcome(bad_input=bad_input), _progress(not as_json) as step:
        reports = erase_subjects(session, options, step)
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
def audit_run_command(*, where: Where, checkpoints: CheckpointOptions, as_json: bool, html_path: Path | None,
                      metrics_textfile: Path | None, pushgateway: str | None, lookback_hours: float | None,
                      heartbeat_gap_s: float | None, grace_hours: float | None,
                      pii_sample_rows: int | None) -> None:
    """Run every audit check; record the result in the ledger; exit 1 on any failure."""
    thresholds = AuditThresholds(lookback_hours, heartbeat_gap_s, grace_hours, pii_sample_rows)
    outputs = AuditOutputs(html_path, metrics_textfile, pushgateway)
    with _session(where) as session, _outcome(), _progress(not as_json) as step:
        result = run_audit_job(session, checkpoints=checkpoints, thresholds=thresholds, outputs=outputs,
                               progress=step)
    if result.push_error is not None:
        click.echo(f"sovtel audit run: pushing metrics failed: {result.push_error}", err=True)
    run = result.run
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
def verify_command(*, where: Where, checkpoints: CheckpointOptions, as_json: bool) -> None:
    """Verify the ledger's hash chain against the signed checkpoints; exit 1 on any problem."""
    with _session(where) as session, _outcome():
        checked = verify_ledger_job(session, checkpoints)
    result = checked.verification
    if as_json:
        _echo_json({**result.as_json(), "access_seq": checked.access_seq, "access_refused": checked.access_refused})
    else:
        for p in result.problems:
            click.echo(f"PROBLEM [{p.kind}] {p.message}")
        for note in result.notes:
            click.echo(f"note: {note}")
        if checked.access_refused:
            click.echo(f"note: {checked.access_refused}")
        state = "verified" if result.ok else f"FAILED ({len(result.problems)} problem(s))"
        click.echo(f"ledger {checked.database}: {result.entries} entries, head seq {result.head_seq}, "
                   f"head hash {result.head_hash}, {result.checkpoints} checkpoint(s): {state}")
    if not result.ok:
        sys.exit(EXIT_FOUND)


@audit_group.command("checkpoint")
@_store_options
@_checkpoint_options
def checkpoint_command(*, where: Where, checkpoints: CheckpointOptions) -> None:
    """Sign the ledger head now and write the checkpoint outside the store."""
    with _session(where) as session, _outcome():
        signed = sign_ledger_head(session, checkpoints)
    cp = signed.checkpoint
    click.echo(f"checkpoint {signed.path}: seq {cp.seq}, hash {cp.hash}, key {cp.key_id}")


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
def register_model_command(*, where: Where, model: str, version: str, provider: str, hyperparameters: str | None,
                           training_data: str | None, deployment_config: str | None, documentation: str | None,
                           recorded_by: str) -> None:
    """Record a model version's documentation in the AI-Act store (refused if it holds personal data)."""
    mv = _validated(ModelVersion, model=model, version=version, provider=provider,
                    hyperparameters=_json_object(hyperparameters, "--hyperparameters"),
                    training_data=_text_or_file(training_data),
                    deployment_config=_json_object(deployment_config, "--deployment-config"),
                    documentation=_text_or_file(documentation), recorded_by=recorded_by)
    with _session(where) as session, _outcome(bad_input=(PersonalDataError,)):
        entry = register_model(session, mv)
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
def record_evaluation_command(*, where: Where, model: str, version: str, suite: str, metric: str, value: float,
                              threshold: float | None, passed: bool | None, dataset: str) -> None:
    """Record an evaluation result of a model version."""
    ev = _validated(Evaluation, model=model, version=version, suite=suite, metric=metric, value=value,
                    threshold=threshold, passed=passed, dataset=dataset)
    with _session(where) as session, _outcome(bad_input=(PersonalDataError,)):
        entry = record_evaluation(session, ev)
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
def record_incident_command(*, where: Where, incident_id: str, model: str, version: str, severity: str, state: str,
                            summary: str, details: str, reported_by: str) -> None:
    """Record an incident or a change of its status."""
    inc = _validated(Incident, incident_id=incident_id, model=model, version=version, severity=severity,
                     status=state, summary=summary, details=_text_or_file(details), reported_by=reported_by)
    with _session(where) as session, _outcome(bad_input=(PersonalDataError,)):
        entry = record_incident(session, inc)
    click.echo(f"recorded incident {incident_id} ({severity}, {state}); ledger entry {entry.seq}")


@aiact_group.command("aggregate")
@_store_options
def aggregate_command(*, where: Where) -> None:
    """Aggregate every complete day of the tiers' spans into usage_daily (each day once per tier)."""
    with _session(where) as session, _outcome(found=(PersonalDataError,)):
        report = aggregate_usage(session)
    days = sum(len(d) for d in report.days.values())
    click.echo(f"{report.rows} usage row(s) for {days} day(s)" + (f"; ledger entry {report.ledger_seq}"
                                                                   if report.ledger_seq else ""))


@aiact_group.command("export")
@_store_options
@_checkpoint_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_command(*, where: Where, checkpoints: CheckpointOptions, out_dir: Path) -> None:
    """Write a machine-readable bundle of the AI-Act store for an auditor (manifest with SHA-256 per file)."""
    with _session(where) as session, _outcome():
        exported = export_aiact(session, out_dir, checkpoints)
    verification = exported.verification
    state = "verified" if verification.ok else f"NOT verified ({len(verification.problems)} problem(s))"
    click.echo(f"exported to {out_dir}: manifest {exported.manifest.name}; ledger {verification.entries} entries, "
               f"{state}")
    if not verification.ok:
        sys.exit(EXIT_FOUND)
