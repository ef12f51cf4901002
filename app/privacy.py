"""``sovtel privacy scrub|budget`` and ``sovtel keys rotate|list``.

Exit codes follow the ``sovtel`` CLI: 0 success, 1 the job found problems (bad lines, a store or
key failure), 2 bad input (usage, configuration).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
from pydantic import TypeAdapter, ValidationError

from app.store import StoreOptionError, store_from_options, store_options
from processors.keyring import KINDS, KeyRing, KeyRingError, rotate
from sovtel.config import Config as SovtelConfig
from sovtel.config import ConfigError, SecretError, SecretRef, load_config, resolve_secret
from storage.backend import Store

DEFAULT_BATCH = 256


def _fail(command: str, code: int, message: str) -> NoReturn:
    click.echo(f"sovtel {command}: {message}", err=True)
    sys.exit(code)


def _open_store(command: str, store_dir: Path | None, url: str | None, user: str | None,
                password_env: str | None) -> Store:
    """The store ``--store``/``--url`` name (``store_from_options``); a bad choice fails ``command`` (exit 2)."""
    try:
        return store_from_options(store_dir, url, user, password_env)
    except StoreOptionError as exc:
        _fail(command, 2, exc.message)


@click.group("privacy")
def privacy_group() -> None:
    """Privacy tools: scrub text with the pipeline's own masking, show differential-privacy budgets."""


def _configured(cfg: SovtelConfig, type_name: str) -> list[Any]:
    """Configs of the processors of one type, in the order pipelines use them."""
    names: list[str] = []
    for pipe in cfg.service.pipelines.values():
        for name in pipe.processors:
            if name.split("/", 1)[0] == type_name and name not in names:
                names.append(name)
    return [cfg.component("processors", n).config for n in names]


def _maskers(config_path: Path | None) -> list[Any]:
    """The maskers of the configuration's pii processors (or the default one without a config)."""
    from processors import pii

    if config_path is None:
        configs = [pii.Config()]
    else:
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            _fail("privacy scrub", 2, str(exc))
        configs = _configured(cfg, "pii")
        if not configs:
            _fail("privacy scrub", 2, f"{config_path}: no pii processor is used by any pipeline")

    def resolve(ref: str) -> str:
        try:
            return resolve_secret(ref)
        except SecretError:
            if config_path is not None:
                raise
            # Without a configuration a scrub still works: tokens are consistent within this run only.
            click.echo(f"sovtel privacy scrub: {ref} is not set; using a random key for this run only", err=True)
            return secrets.token_hex(32)

    try:
        return [pii.build_masker(c, resolve) for c in configs]
    except (SecretError, ValueError, RuntimeError) as exc:
        _fail("privacy scrub", 2, str(exc))


def _chunks(stream: Any, size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for raw in stream:
        chunk.append(raw)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scrub_stream(maskers: list[Any], stream: Any, out: TextIO, err: TextIO, batch_size: int = DEFAULT_BATCH) -> int:
    """Mask JSONL from ``stream`` (bytes lines) to ``out``; returns the number of bad lines.

    One line out per line in, same order. A blank line stays blank. A line that is not UTF-8 JSON,
    or that cannot be masked, becomes ``{"error": …, "line": N}`` and is reported on ``err`` by
    number only: its content is never echoed anywhere.
    """
    bad = 0
    number = 0
    for chunk in _chunks(stream, batch_size):
        outputs: list[str | None] = []
        todo: list[tuple[int, int, str]] = []  # (position in chunk, line number, text)
        for raw in chunk:
            number += 1
            body = raw.rstrip(b"\r\n")
            if not body.strip():
                outputs.append("")
                continue
            try:
                text = body.decode("utf-8")
                json.loads(text)
            except UnicodeDecodeError:
                err.write(f"line {number}: not UTF-8 text\n")
                outputs.append(json.dumps({"error": "not UTF-8", "line": number}))
                bad += 1
                continue
            except json.JSONDecodeError as exc:
                err.write(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})\n")
                outputs.append(json.dumps({"error": "invalid JSON", "line": number}))
                bad += 1
                continue
            outputs.append(None)
            todo.append((len(outputs) - 1, number, text))
        texts = [t for _, _, t in todo]
        failed: set[int] = set()
        for masker in maskers:
            results = masker.mask_values(texts, None, documents=True)
            for k, r in enumerate(results):
                if r.error is not None:
                    failed.add(k)
            texts = [r.text for r in results]
        for k, (pos, line_no, _) in enumerate(todo):
            if k in failed:
                err.write(f"line {line_no}: could not be masked safely; withheld\n")
                outputs[pos] = json.dumps({"error": "masking failed", "line": line_no})
                bad += 1
            else:
                outputs[pos] = texts[k]
        for line in outputs:
            out.write(f"{line}\n")
        out.flush()
    return bad


@privacy_group.command("scrub")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Use the pii processor(s) of this configuration (default: the built-in defaults).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Lines masked together (batched NER); 1 for interactive use.",
)
def scrub(config_path: Path | None, batch_size: int) -> None:
    """Read JSONL on stdin and write it on stdout with every string value masked.

    Exactly the pipeline's own masking: the same recognizers, JSON handling and keyed tokens as
    the configuration's pii processor. Bad lines become error objects (never echoed) and make the
    exit code 1.
    """
    maskers = _maskers(config_path)
    bad = scrub_stream(maskers, sys.stdin.buffer, sys.stdout, sys.stderr, batch_size)
    if bad:
        click.echo(f"sovtel privacy scrub: {bad} line(s) could not be scrubbed", err=True)
        sys.exit(1)


@privacy_group.command("budget")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Take the budget (dp processor) and the store (clickhouse exporter) from this configuration.",
)
@store_options("ClickHouse HTTP URL, e.g. https://reader@clickhouse.example:8443.")
@click.option("--database", help="Database of the ledger table (default: the config's, else sovtel).")
@click.option(
    "--budget", "per_window", type=float,
    help="Measure against a lower cap than the one in force (the store's budget policy); never a higher one.",
)
@click.option("--tenant", help="Only this (pseudonymised) tenant id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def budget(
    *,
    config_path: Path | None,
    store_dir: Path | None,
    url: str | None,
    user: str | None,
    password_env: str | None,
    database: str | None,
    per_window: float | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Show the privacy budget spent and remaining per tenant and window against the cap in force, and refusals.

    The cap is the store's budget policy (``sovtel privacy set-budget``); a configuration's
    ``budget.per_window`` and ``--budget`` can only lower it.
    """
    from processors import dp
    from retention.dp_ledger import budget_status
    from retention.dp_policy import ALL_TENANTS, BudgetPolicy
    from storage.backend import StoreConfig, StoreError

    budget_cfg = dp.BudgetConfig()
    store_cfg: StoreConfig | None = None
    if config_path is not None:
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            _fail("privacy budget", 2, str(exc))
        dps = _configured(cfg, "dp")
        if dps:
            budget_cfg = dps[0].budget
        for (kind, _name), spec in cfg.components.items():
            if kind == "exporters" and spec.type == "clickhouse" and store_cfg is None:
                exporter: Any = spec.config
                store_cfg = exporter.store_config(cfg.service.data_dir)
    if store_dir is not None and url is not None:
        _fail("privacy budget", 2, "give at most one of --store and --url")
    db = database or budget_cfg.database
    if not db.isidentifier():
        _fail("privacy budget", 2, f"--database {db!r} must be a plain identifier")
    if url is not None or store_dir is not None:
        store = _open_store("privacy budget", store_dir, url, user, password_env)
    elif store_cfg is not None:
        store = Store.from_config(store_cfg)
    else:
        _fail("privacy budget", 2, "give --store DIR, --url URL or -c CONFIG with a clickhouse exporter")
    try:
        policy = BudgetPolicy(store, db)
        in_force = policy.in_force(ALL_TENANTS)
        lower = _lower_only("privacy budget", per_window, in_force.cap.per_window)
        if config_path is not None and budget_cfg.per_window < in_force.cap.per_window:
            lower = min(lower or budget_cfg.per_window, budget_cfg.per_window)
        caps = policy.caps(lower_to=lower)
        default = caps(ALL_TENANTS)
        report = budget_status(store, db, default.per_window, default.window_s, tenant, caps=caps)
    except StoreError as exc:
        _fail("privacy budget", 1, str(exc))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    if not report.rows:
        click.echo(f"no releases recorded in {report.table}")
        return
    click.echo(
        f"{'tenant':<34} {'window start (UTC)':<17} {'spent':>7} {'remaining':>9} {'releases':>8} {'refused':>7}"
    )
    for r in report.rows:
        click.echo(
            f"{r.tenant_id:<34} {r.window_start:%Y-%m-%d %H:%M} {r.spent:>7.3f} {r.remaining:>9.3f} "
            f"{r.releases:>8} {r.refusals:>7}"
        )
    click.echo(f"budget: {report.budget:g} epsilon per tenant per {report.window_s} s window"
               + (f" (policy set by {in_force.actor or 'an operator'} at {in_force.at:%Y-%m-%d %H:%M} UTC)"
                  if in_force.at is not None else " (the default: no policy set in this store)"))


def _lower_only(command: str, per_window: float | None, in_force: float) -> float | None:
    """``--budget`` as a lower cap for one run; exits 2 when it is not positive or above the cap in force."""
    if per_window is None:
        return None
    if not per_window > 0:
        _fail(command, 2, "--budget must be positive")
    if per_window > in_force + 1e-12:
        _fail(command, 2, f"--budget {per_window:g} is above the cap in force ({in_force:g} epsilon per tenant and "
                          "window); --budget can only lower it for this run. Raising the cap is an administrative act "
                          "recorded in the AI-Act ledger: sovtel privacy set-budget --epsilon E --actor ROLE --reason "
                          "TEXT")
    return per_window


@click.group("keys")
def keys_group() -> None:
    """Pseudonymisation keys: add and activate a new key (rotation), list the ring."""


def _ring_path(ring: Path | None) -> Path:
    if ring is not None:
        return ring
    env = os.environ.get("SOVTEL_KEY_RING")
    if not env:
        _fail("keys", 2, "give --ring FILE (or set SOVTEL_KEY_RING)")
    return Path(env)


@keys_group.command("rotate")
@click.option(
    "--ring", type=click.Path(dir_okay=False, path_type=Path), help="Key ring file (default $SOVTEL_KEY_RING)."
)
@click.option(
    "--kind", type=click.Choice(["node", "pepper"]), required=True, help="Collector node key or store pepper."
)
@click.option("--ref", help="Reference to an existing secret (env:NAME or file:PATH) instead of generating one.")
@click.option(
    "--key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a generated key file goes (default: keys/ next to the ring).",
)
@click.option("--no-activate", is_flag=True, help="Add the key without making it active yet (stage a rotation).")
def rotate_command(ring: Path | None, kind: str, ref: str | None, key_dir: Path | None, no_activate: bool) -> None:
    """Add a new key id to the ring (and make it active); old keys stay for look-ups and erasure.

    Running processors pick the new key up on their next ring check (no restart); records carry
    the key id they were hashed with.
    """
    path = _ring_path(ring)
    if ref is not None:
        try:
            TypeAdapter(SecretRef).validate_python(ref)
        except ValidationError:
            _fail("keys rotate", 2, "--ref must be env:NAME or file:PATH (keys are given by reference only)")
    try:
        key_id, key_ref = rotate(path, "node" if kind == "node" else "pepper", ref, key_dir, activate=not no_activate)
    except (KeyRingError, OSError) as exc:
        _fail("keys rotate", 1, str(exc))
    state = "added" if no_activate else "added and active"
    click.echo(f"{kind} key {key_id} {state} ({key_ref}) in {path}")


@keys_group.command("list")
@click.option(
    "--ring", type=click.Path(dir_okay=False, path_type=Path), help="Key ring file (default $SOVTEL_KEY_RING)."
)
@click.option("--check", is_flag=True, help="Also resolve every reference and report whether it works.")
def list_command(ring: Path | None, check: bool) -> None:
    """List key ids, references and which is active (never key material)."""
    path = _ring_path(ring)
    try:
        kr = KeyRing.load(path)
    except KeyRingError as exc:
        _fail("keys list", 1, str(exc))
    failures = 0
    for kind in KINDS:
        ks = getattr(kr, kind)
        if ks is None:
            continue
        for key_id, entry in ks.keys.items():
            mark = "*" if key_id == ks.active else " "
            line = f"{mark} {kind:<6} {key_id:<6} {entry.ref}  {entry.created}"
            if check:
                try:
                    kr.key(kind, key_id)
                    line += "  ok"
                except KeyRingError as exc:
                    failures += 1
                    line += f"  FAILED: {exc}"
            click.echo(line)
    if failures:
        sys.exit(1)


@privacy_group.command("release")
@store_options("ClickHouse HTTP URL of the tier store to read.")
@click.option("--database", default="sovtel", show_default=True, help="Tier database holding the spans.")
@click.option("--to-database", default="public", show_default=True,
              help="Database (same store) the released aggregates are written to, e.g. the public tier's.")
@click.option("--window", "window_text", default="-1h/now", show_default=True,
              help="Spans to aggregate: START/END, e.g. -1h/now or 2026-11-01T00:00/2026-11-02T00:00.")
@click.option("--bucket-s", type=click.IntRange(60, 86_400), default=3600, show_default=True,
              help="Release window per tenant (seconds).")
@click.option("--epsilon", type=float, default=1.0, show_default=True,
              help="Epsilon of this release (0.1-1.0), split evenly over its statistics.")
@click.option("--budget", "per_window", type=float,
              help="Lower the cap in force (the store's budget policy) for this run only; never raises it.")
@click.option("--budget-window-s", type=int, hidden=True,
              help="No longer an option: the budget window is policy (sovtel privacy set-budget --window-s).")
@click.option("--name", "release_name", default="usage", show_default=True, help="Name of this release.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def release(
    *, store_dir: Path | None, url: str | None, user: str | None, password_env: str | None, database: str,
    to_database: str, window_text: str, bucket_s: int, epsilon: float, per_window: float | None,
    budget_window_s: int | None, release_name: str, as_json: bool,
) -> None:
    """Publish DP aggregates (counts, means, p95) of a tier's spans per tenant, model and window.

    Each tenant-window is paid from its privacy budget (persisted in the store) under the cap the
    store's budget policy puts in force; an exhausted budget refuses that tenant-window and records
    the refusal. Exit 1 if anything was refused.
    """
    from processors.dp import check_epsilon
    from quality.windows import WindowError, parse_window
    from retention.dp_policy import ALL_TENANTS, BudgetPolicy
    from retention.dp_release import ReleaseOptions, release_spans
    from storage.backend import StoreError

    if budget_window_s is not None:
        _fail("privacy release", 2, "--budget-window-s is no longer an option: the budget window is part of the "
                                    "budget policy in the store (sovtel privacy set-budget --window-s)")

    for label, name in (("--database", database), ("--to-database", to_database)):
        if not name.isidentifier():
            _fail("privacy release", 2, f"{label} {name!r} must be a plain identifier")
    try:
        check_epsilon(epsilon)
        window = parse_window(window_text)
        options = ReleaseOptions(window.start, window.end, database, to_database, bucket_s, epsilon, per_window,
                                 release_name)
    except (ValueError, WindowError) as exc:
        _fail("privacy release", 2, str(exc))
    store = _open_store("privacy release", store_dir, url, user, password_env)
    try:
        _lower_only("privacy release", per_window, BudgetPolicy(store, database).in_force(ALL_TENANTS).cap.per_window)
        outcome = release_spans(store, options)
    except StoreError as exc:
        _fail("privacy release", 1, str(exc))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(outcome.as_json(), indent=2))
    else:
        click.echo(outcome.describe())
    if not outcome.ok:
        sys.exit(1)


@privacy_group.command("set-budget")
@store_options("ClickHouse HTTP URL of the tier store.")
@click.option("--database", default="sovtel", show_default=True, help="Tier database of the budget ledger.")
@click.option("--aiact-database", default="aiact", show_default=True,
              help="AI-Act database (same store) whose ledger records the change.")
@click.option("--epsilon", "per_window", type=float, required=True, help="Epsilon per tenant per budget window.")
@click.option("--window-s", type=click.IntRange(60), help="Budget window in seconds (default: the one in force).")
@click.option("--tenant", default="", help="Only this (pseudonymised) tenant id (default: every tenant).")
@click.option("--actor", default="", help="Who decides: a role such as 'dpo' (required to raise).")
@click.option("--reason", default="", help="Why (required to raise; kept in the AI-Act ledger).")
def set_budget(
    *, store_dir: Path | None, url: str | None, user: str | None, password_env: str | None, database: str,
    aiact_database: str, per_window: float, window_s: int | None, tenant: str, actor: str, reason: str,
) -> None:
    """Set the privacy-budget cap every release reads: lowering is always allowed; raising it (more
    epsilon, or a shorter window) needs --actor and --reason and is recorded in the AI-Act ledger first."""
    from processors.dp import BudgetCap
    from retention.dp_policy import BudgetPolicy, BudgetPolicyError
    from retention.guard import PersonalDataError
    from retention.ledger import Ledger
    from storage.backend import StoreError

    for label, name in (("--database", database), ("--aiact-database", aiact_database)):
        if not name.isidentifier():
            _fail("privacy set-budget", 2, f"{label} {name!r} must be a plain identifier")
    store = _open_store("privacy set-budget", store_dir, url, user, password_env)
    try:
        policy = BudgetPolicy(store, database)
        current = policy.in_force(tenant).cap
        try:
            cap = BudgetCap(per_window, window_s if window_s is not None else current.window_s)
        except ValueError as exc:
            _fail("privacy set-budget", 2, str(exc))
        change = policy.set(cap, tenant_id=tenant, actor=actor, reason=reason,
                            ledger=Ledger(store, aiact_database, actor=actor or "sovtel"))
    except (BudgetPolicyError, PersonalDataError) as exc:
        _fail("privacy set-budget", 2, str(exc))
    except StoreError as exc:
        _fail("privacy set-budget", 1, str(exc))
    finally:
        store.close()
    click.echo(change.describe())
