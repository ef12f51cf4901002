"""The ``sovtel`` command line: run, config validate, demo, query, and the command groups of the other app modules.

Exit codes: 0 success, 1 a job found problems or failed at run time, 2 bad input (usage, config).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from app.dashboards import dashboards_group
from app.privacy import keys_group, privacy_group
from app.quality import quality_group
from app.retention import aiact_group, audit_group, retention_group
from app.serve import serve_command
from app.store import schema_group
from sovtel import __version__
from sovtel.config import Config, ConfigError, load_config

log = logging.getLogger("sovtel.cli")
# The AI-Act ledger action recording a pipeline that runs without minimisation, and why.
UNMINIMISED_ACTION = "config.unminimised"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sovtel")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """sovtel: sovereignty-aware telemetry for AI inference."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # The client libraries warn about each retry of a store that does not answer; the command
        # itself says so in one line, so their warnings are only shown with -v.
        for name in ("urllib3", "clickhouse_connect"):
            logging.getLogger(name).setLevel(logging.ERROR)


@cli.group("config")
def config_group() -> None:
    """Work with configuration files."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Validate FILE and report every error with its YAML path; exit 2 if any."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        _echo_config_errors(exc)
        sys.exit(2)
    n = len(cfg.service.pipelines)
    click.echo(f"{file}: valid ({n} pipeline(s), {len(cfg.components)} component(s))")


def _echo_config_errors(exc: ConfigError) -> None:
    """One line per problem (file, line, YAML path, what is wrong), then the count."""
    for line in exc.errors:
        click.echo(f"{exc.source}: {line}", err=True)
    click.echo(f"{exc.source}: {len(exc.errors)} error(s)", err=True)


class OptOutError(Exception):
    """A pipeline's opt-out from minimisation could not be recorded, so the collector must not start."""


def record_unminimised(cfg: Config, source: str) -> list[str]:
    """Append one AI-Act ledger entry per pipeline that opts out of minimisation, in the ledger of
    each store its ``clickhouse`` exporters write to; returns a line per entry.

    The ledger is written before any record flows; if it cannot be (no clickhouse exporter, store
    unreachable, ledger missing with ``migrate: false``), ``OptOutError`` says why.
    """
    opted = cfg.unminimised()
    if not opted:
        return []
    from retention.guard import PersonalDataError
    from retention.ledger import Ledger, LedgerError
    from sovtel.config import SecretError, resolve_secret
    from storage.backend import Store, StoreError
    from storage.migrate import MigrationError, migrate

    done: list[str] = []
    for pname, reason in opted.items():
        pipe = cfg.service.pipelines[pname]
        sinks = [cfg.component("exporters", e) for e in pipe.exporters]
        stores: dict[tuple[str, str], Any] = {}
        for spec in sinks:
            if spec.type == "clickhouse":
                exporter: Any = spec.config
                location = exporter.store_config(cfg.service.data_dir)
                stores.setdefault((location.describe(), exporter.aiact_database), exporter)
        if not stores:
            raise OptOutError(f"pipeline {pname} opts out of minimisation, but none of its exporters is a "
                              "clickhouse store whose AI-Act ledger could record the reason")
        payload = {"pipeline": pname, "reason": reason, "processors": list(pipe.processors),
                   "node": cfg.service.node, "config": source}
        for (target, database), exporter in stores.items():
            store = Store.from_config(exporter.store_config(cfg.service.data_dir), resolve_secret)
            try:
                if exporter.migrate:
                    migrate(store, exporter.schema_settings())  # the ledger table may not exist yet
                ledger = Ledger(store, database, actor="sovtel run")
                if not ledger.exists():
                    raise OptOutError(f"{target}: no AI-Act ledger {database}.ledger to record the opt-out of "
                                      f"pipeline {pname} (run sovtel schema migrate)")
                entry = ledger.append(UNMINIMISED_ACTION, payload)
            except (StoreError, LedgerError, MigrationError, PersonalDataError, SecretError) as exc:
                raise OptOutError(f"{target}: cannot record the opt-out of pipeline {pname} in "
                                  f"{database}.ledger: {exc}") from exc
            finally:
                store.close()
            done.append(f"pipeline {pname} runs unminimised ({reason}); recorded as {database}.ledger seq "
                        f"{entry.seq} in {target}")
    return done


@cli.command("run")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def run(config_path: Path) -> None:
    """Run the collector pipelines of a configuration until SIGTERM or Ctrl-C."""
    from sovtel.pipeline import Service

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        _echo_config_errors(exc)
        sys.exit(2)
    # The data_dir holds the durable queues and the route log; creating it makes durable the default.
    try:
        cfg.service.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"sovtel: cannot create data_dir {cfg.service.data_dir}: {exc.strerror}", err=True)
        sys.exit(1)
    # An opt-out from minimisation is on the record before the first record is stored unminimised.
    try:
        for line in record_unminimised(cfg, str(config_path)):
            log.warning("%s", line)
    except OptOutError as exc:
        click.echo(f"sovtel: {exc}", err=True)
        sys.exit(1)
    service = Service(cfg)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        service.start()
    except Exception as exc:
        click.echo(f"sovtel: start-up failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"sovtel: running {len(cfg.service.pipelines)} pipeline(s); metrics on port {service.metrics_port}")
    stop.wait()
    click.echo("sovtel: shutting down (draining queues)")
    service.shutdown()


@cli.command("demo")
@click.option("--duration", type=click.FloatRange(1, 3600), default=30.0, show_default=True, help="Seconds of traffic.")
@click.option("--rate", type=click.IntRange(1, 100_000), default=200, show_default=True, help="Requests per second.")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Keep the embedded store here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(duration: float, rate: int, store: Path | None, as_json: bool, seed: int) -> None:
    """Run the pipeline on an embedded store with synthetic GenAI traffic over real OTLP; print a summary."""
    from app.demo import run_demo

    summary = run_demo(duration=duration, rate=rate, store=store, seed=seed, show_progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        from app.demo import print_summary

        print_summary(summary)
    failed = [k for k, v in summary["jobs"].items() if v.startswith("FAILED")]
    if summary["stored"]["spans"] <= 0 or failed:
        sys.exit(1)


@cli.command("query")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Embedded store directory.")
@click.option("--url", help="ClickHouse HTTP URL, e.g. http://reader@127.0.0.1:8123 (or a sovtel serve).")
@click.option("--password-env", help="Environment variable holding the password for --url.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "tsv"]), default="table", show_default=True)
@click.argument("sql")
def query(store: Path | None, url: str | None, password_env: str | None, fmt: str, sql: str) -> None:
    """Run read-only SQL against a store and print the result."""
    from app.query import QueryError, run_query

    try:
        columns, rows = run_query(sql, store=store, url=url, password_env=password_env)
    except QueryError as exc:
        click.echo(f"sovtel query: {exc}", err=True)
        sys.exit(exc.exit_code)
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2))
    elif fmt == "tsv":
        click.echo("\t".join(columns))
        for r in rows:
            click.echo("\t".join("" if v is None else str(v) for v in r))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(*columns)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        Console().print(t)


for _command in (schema_group, serve_command, privacy_group, keys_group, retention_group, audit_group,
                 aiact_group, quality_group, dashboards_group):
    cli.add_command(_command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="sovtel")
