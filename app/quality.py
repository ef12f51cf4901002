"""``sovtel quality report|drift``: hallucination-rate and drift jobs on a store, for people and CronJobs.

Exit codes: 0 success (``drift``: no drift, or too little data to test), 1 drift detected
(``drift`` only), 2 bad input, 3 the store or the job failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from app.store import StoreOptionError, store_from_options
from quality.drift import DriftConfig, DriftConfigError, load_drift_config
from quality.jobs import DriftOptions, QualityJobError, run_drift_job
from quality.report import ReportOptions, render_drift_text, render_text, run_report_job
from quality.windows import Window, WindowError, parse_window
from storage.backend import Store, StoreError

EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Opts = TypeVar("Opts")


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"sovtel quality: {message}", err=True)
    sys.exit(code)


def _store_options(fn: F) -> F:
    for option in reversed((
        click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Embedded store directory."),
        click.option("--url", help="ClickHouse HTTP(S) URL (http://reader@host:8123) or a chdb:// DSN."),
        click.option("--user", help="User name for --url (overrides one in the URL)."),
        click.option("--password-env", help="Environment variable holding the password for --url."),
        click.option("--database", default="sovtel", show_default=True, help="The tier database to read."),
    )):
        fn = option(fn)
    return fn


def open_store(store_dir: Path | None, url: str | None, user: str | None, password_env: str | None) -> Store:
    """The store named on the command line (exactly one of --store and --url)."""
    try:
        return store_from_options(store_dir, url, user, password_env)
    except StoreOptionError as exc:
        _fail(EXIT_BAD_INPUT, exc.message)


def _window(text: str, option: str) -> Window:
    try:
        return parse_window(text)
    except WindowError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _drift_config(config: Path | None, alpha: float | None, psi_threshold: float | None,
                  min_samples: int | None) -> DriftConfig:
    try:
        base = load_drift_config(config) if config is not None else DriftConfig()
    except DriftConfigError as exc:
        _fail(EXIT_BAD_INPUT, str(exc))
    overrides = {k: v for k, v in (("alpha", alpha), ("psi_threshold", psi_threshold),
                                   ("min_samples", min_samples)) if v is not None}
    try:
        return DriftConfig.model_validate({**base.model_dump(), **overrides})
    except ValueError as exc:
        _fail(EXIT_BAD_INPUT, f"invalid drift setting: {exc}")


def _run_job(job: Callable[[Store, Opts], T], store: Store, options: Opts) -> T:
    """Run a job on an open store, close it, and turn the job's failures into exit 3."""
    try:
        return job(store, options)
    except QualityJobError as exc:
        _fail(EXIT_FAILED, str(exc))
    except StoreError as exc:
        _fail(EXIT_FAILED, f"store {store.target}: {exc}")
    finally:
        store.close()


@click.group("quality")
def quality_group() -> None:
    """ML quality: hallucination rates per model version, version comparisons and drift."""


@quality_group.command("report")
@_store_options
@click.option("--window", "window_text", default="-7d/now", show_default=True,
              help="START/END, ISO (2026-11-01T00:00/2026-11-02T00:00) or relative (-2h/-1h, -7d/now).")
@click.option("--alpha", type=click.FloatRange(0, 0.5, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Significance level of the version comparisons and drift tests.")
@click.option("--drift-current", default="1d", show_default=True,
              help="Drift compares the window's last part of this length (e.g. 1d, 6h) with the rest; 'off' skips.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file of drift thresholds (alpha, psi_threshold, min_samples, bins, features …).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page here.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write Prometheus gauges here (node_exporter textfile format).")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Write results to the quality_* tables the dashboards read.")
def report_command(*, store_dir: Path | None, url: str | None, user: str | None, password_env: str | None,
                   database: str, window_text: str, alpha: float, drift_current: str, config_path: Path | None,
                   as_json: bool, html_path: Path | None, metrics_file: Path | None, save: bool) -> None:
    """Hallucination rate per model version per hour and day (Wilson 95% intervals), one-sided tests of
    'is the newer version worse?', and drift of each model over the window."""
    window = _window(window_text, "--window")
    current_seconds: float | None = None
    if drift_current != "off":
        try:
            probe = parse_window(f"-{drift_current.lstrip('-')}/now")
        except WindowError:
            raise click.BadParameter("use a duration like 1d, 6h or 30m, or 'off'",
                                     param_hint="--drift-current") from None
        current_seconds = probe.seconds
    cfg = _drift_config(config_path, alpha if config_path is None else None, None, None)
    options = ReportOptions(window=window, database=database, alpha=alpha, drift=cfg,
                            drift_current_seconds=current_seconds, save=save, html_path=html_path,
                            metrics_file=metrics_file)
    store = open_store(store_dir, url, user, password_env)
    report = _run_job(run_report_job, store, options)
    click.echo(json.dumps(report.as_dict(), indent=2, default=str) if as_json else render_text(report), nl=False)


@quality_group.command("drift")
@_store_options
@click.option("--model", "models", multiple=True, required=True,
              help="Response model (version) to test; repeat for several.")
@click.option("--reference", "reference_text", required=True, help="Reference window START/END.")
@click.option("--current", "current_text", required=True, help="Current window START/END.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file of drift thresholds.")
@click.option("--alpha", type=float, help="Family-wise significance level per model (default 0.01).")
@click.option("--psi-threshold", type=float, help="Minimum PSI for a significant shift to count (default 0.1).")
@click.option("--min-samples", type=int, help="Minimum spans per window for a feature to be tested (default 100).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write Prometheus gauges here (node_exporter textfile format).")
@click.option("--save/--no-save", default=True, show_default=True, help="Write results to quality_drift.")
def drift_command(*, store_dir: Path | None, url: str | None, user: str | None, password_env: str | None,
                  database: str, models: tuple[str, ...], reference_text: str, current_text: str,
                  config_path: Path | None, alpha: float | None, psi_threshold: float | None,
                  min_samples: int | None, as_json: bool, metrics_file: Path | None, save: bool) -> None:
    """Test whether request features of MODEL shifted between two windows (KS or chi-square per feature,
    Holm-corrected, plus PSI). Exits 1 when drift is detected, so a CronJob fails visibly."""
    reference = _window(reference_text, "--reference")
    current = _window(current_text, "--current")
    cfg = _drift_config(config_path, alpha, psi_threshold, min_samples)
    options = DriftOptions(models=models, reference=reference, current=current, database=database, config=cfg,
                           save=save, metrics_file=metrics_file)
    store = open_store(store_dir, url, user, password_env)
    result = _run_job(run_drift_job, store, options)
    if as_json:
        click.echo(json.dumps(result.as_dicts(), indent=2))
    else:
        click.echo(render_drift_text(result.reports), nl=False)
    if result.drift:
        sys.exit(EXIT_DRIFT)
