"""``sovtel demo``: the whole pipeline on an embedded store, fed by synthetic GenAI traffic over real OTLP.

The pipeline configuration is ``examples/demo.yaml``'s shape built in code (ports picked free on
127.0.0.1); traffic comes from the OpenTelemetry SDK through its OTLP gRPC and HTTP exporters.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from sovtel.config import parse_config
from sovtel.pipeline import Service
from sovtel.telemetry import Telemetry

DEMO_NODE = "gpu-node-01"


def demo_keys(state: Path) -> tuple[Path, str]:
    """Create the demo's keys once: a key ring (node key + store pepper) and the PII token key, all as files."""
    from processors.keyring import rotate

    state.mkdir(parents=True, exist_ok=True)
    ring = state / "keyring.yaml"
    if not ring.exists():
        rotate(ring, "node")
        rotate(ring, "pepper")
    pii_key = state / "keys" / "pii-token.key"
    if not pii_key.exists():
        pii_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(pii_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return ring, f"file:{pii_key.resolve()}"


def demo_config(store: Path, database: str = "sovtel") -> dict[str, Any]:
    """The demo's pipeline configuration as a mapping (validated like any file)."""
    exporter = {"path": str(store), "database": database, "queue": {"batch_rows": 20_000, "max_delay_s": 0.5}}
    ring, pii_key = demo_keys(store / "state")
    # Quality scoring sees raw content, so it runs first (design §1); the demo's purpose keeps
    # content, which is stored only after PII masking. Identifiers are hashed with the node key
    # and then with the store pepper (both sides run in this one process in the demo).
    traces = ["quality", "minimise", "generalise", "pii", "classify", "pseudonymise", "pepper", "genai_metrics"]
    logs = ["minimise", "generalise", "pii", "classify", "pseudonymise", "pepper"]
    return {
        "receivers": {
            "otlp": {
                "protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
            },
            # No GPU here: the demo's GPUs are SIMULATED (named so, and tagged simulated=true).
            "nvml": {"simulated": True, "interval_s": 1},
            "heartbeat": {"interval_s": 2},
        },
        "processors": {
            "quality": {},
            "minimise": {"purpose": "operations", "keep_content": True},
            "generalise": {},
            "pii": {"key": pii_key},
            "classify": {},
            "pseudonymise": {"key_ring": str(ring)},
            "pepper": {"key_ring": str(ring)},
            "genai_metrics": {},
        },
        "exporters": {"clickhouse": exporter},
        "service": {
            "node": DEMO_NODE,
            "data_dir": str(store / "state"),
            "telemetry": {"metrics": {"address": "127.0.0.1:0"}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": traces, "exporters": ["clickhouse"]},
                "logs": {"receivers": ["otlp"], "processors": logs, "exporters": ["clickhouse"]},
                "metrics": {"receivers": ["otlp", "nvml", "heartbeat"], "processors": ["minimise"],
                            "exporters": ["clickhouse"]},
            },
        },
    }


def _progress(show: bool, duration: float) -> Any:
    if not show:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn())


def run_demo(
    duration: float = 30.0,
    rate: int = 200,
    store: Path | None = None,
    seed: int = 7,
    show_progress: bool = True,
    prompt_scale: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run the demo and return its summary (what was sent, stored, dropped; per-model figures)."""
    from collectors.traffic import OtlpTargets, TrafficRun
    from storage.backend import open_store

    store_dir = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="sovtel-demo-"))
    store_dir.mkdir(parents=True, exist_ok=True)
    config = parse_config(demo_config(store_dir), source="demo")
    telemetry = Telemetry()
    service = Service(config, telemetry)
    service.start()
    started = time.time()
    try:
        receiver: Any = service.receivers["otlp"]
        targets = OtlpTargets(grpc=f"127.0.0.1:{receiver.grpc_port}", http=f"http://127.0.0.1:{receiver.http_port}")
        run = TrafficRun(targets, seed=seed, prompt_scale=prompt_scale, nodes=(DEMO_NODE,))
        progress = _progress(show_progress, duration)
        if progress is not None:
            with progress:
                task = progress.add_task("GenAI traffic over OTLP", total=duration, info="")

                def tick(elapsed: float) -> None:
                    stored = telemetry.total("sovtel_sent_records_total", component="clickhouse")
                    progress.update(task, completed=elapsed,
                                    info=f"{run.traffic.stats.spans:,} spans sent, {stored:,.0f} stored")

                stats = run.run_for(duration, rate, tick)
                progress.update(task, completed=duration)
        else:
            stats = run.run_for(duration, rate)
        run.shutdown()
        service.flush(60.0)
    finally:
        service.shutdown()
    elapsed = time.time() - started

    db = open_store({"path": str(store_dir)})
    try:
        stored = {t: int(db.query_rows(f"SELECT count() FROM sovtel.{t}")[0][0]) for t in ("spans", "logs", "metrics")}
        models = db.query_rows(
            """
            SELECT response_model, provider, count() AS requests, sum(input_tokens), sum(output_tokens),
                   round(avg(duration_ns) / 1e6, 1), round(quantile(0.95)(duration_ns) / 1e6, 1),
                   round(avg(ttft_s) * 1000, 1), countIf(status_code = 'ERROR')
            FROM sovtel.spans WHERE operation = 'chat'
            GROUP BY response_model, provider ORDER BY requests DESC
            """
        )
    finally:
        db.close()

    jobs = run_jobs(store_dir, started, store_dir / "report")

    drops: dict[str, float] = {}
    for name, labels, value in telemetry.samples():
        if name in ("sovtel_dropped_records_total", "sovtel_removed_values_total") and value:
            key = f"{labels.get('component')}:{labels.get('reason')}"
            drops[key] = drops.get(key, 0) + value
        if name == "sovtel_refused_requests_total" and value:
            key = f"{labels.get('component')}:refused:{labels.get('reason')}"
            drops[key] = drops.get(key, 0) + value
    return {
        "store": str(store_dir),
        "duration_s": round(elapsed, 1),
        "sent": {"requests": stats.requests, "spans": stats.spans, "logs": stats.logs, "errors": stats.errors,
                 "input_tokens": stats.input_tokens, "output_tokens": stats.output_tokens},
        "received_spans": int(telemetry.total("sovtel_received_records_total", component="pipeline/traces")),
        "stored": stored,
        "models": [
            {"model": m[0], "provider": m[1], "requests": int(m[2]), "input_tokens": int(m[3]),
             "output_tokens": int(m[4]), "mean_latency_ms": m[5], "p95_latency_ms": m[6],
             "mean_ttft_ms": m[7], "errors": int(m[8])}
            for m in models
        ],
        "dropped": dict(sorted(drops.items())),
        "jobs": jobs,
    }


# What the demo documents about its models in the AI-Act store (Art. 11/18 technical documentation).
DEMO_MODELS = {
    "llama-3.1-8b-instruct-v1": ("v1", "vllm", {"temperature": 0.2, "max_tokens": 1024, "quantisation": "fp8"}),
    "llama-3.1-8b-instruct-v2": ("v2", "vllm", {"temperature": 0.2, "max_tokens": 1024, "quantisation": "int4"}),
    "mistral-small-24b-2503": ("2503", "mistral_ai", {"temperature": 0.3, "max_tokens": 2048}),
    "qwen2.5-72b-instruct": ("2.5", "vllm", {"temperature": 0.7, "max_tokens": 4096, "tensor_parallel": 4}),
}


def run_compliance_jobs(store_dir: Path, out_dir: Path) -> dict[str, str]:
    """Document the demo's models, enforce retention and run the audit, as the CronJobs would."""
    import datetime as dt
    from typing import cast

    from retention.aiact import ModelVersion
    from retention.aiact_jobs import register_model
    from retention.audit_jobs import AuditOutputs, run_audit_job, sign_ledger_head
    from retention.checkpoints import generate_key
    from retention.dp_release import ReleaseOptions, release_spans
    from retention.guard import NerMode
    from retention.jobs import apply_retention
    from retention.session import CheckpointOptions, JobSession, SessionOptions, open_session
    from storage.backend import StoreConfig, open_store

    results: dict[str, str] = {}

    def session(actor: str, ner: NerMode | None = None) -> JobSession:
        return open_session(SessionOptions(stores=(StoreConfig(path=store_dir),), actor=actor, ner=ner))

    # Each job runs on its own (a failed job is reported, never hidden, and the next one still runs).
    try:
        with session("ml-platform", "off") as s:
            for model, (version, provider, params) in DEMO_MODELS.items():
                try:
                    register_model(s, ModelVersion(
                        model=model, version=version, provider=provider, hyperparameters=cast(dict[str, Any], params),
                        training_data="Vendor-published pre-training corpus; no operator data used for fine-tuning.",
                        deployment_config={"replicas": 2, "gpu": "H100", "max_batch": 64},
                        documentation=f"Model card and risk assessment of {model}."))
                except Exception as exc:
                    results[f"register {model}"] = f"FAILED: {exc}"
    except Exception as exc:
        results["register models"] = f"FAILED: {exc}"
    results["aiact register-model"] = f"{len(DEMO_MODELS)} model versions documented"
    try:
        now = dt.datetime.now(dt.UTC)
        store = open_store({"path": str(store_dir)})
        try:
            outcome = release_spans(store, ReleaseOptions(now - dt.timedelta(hours=1), now, to_database="public"))
        finally:
            store.close()
        results["privacy release (DP)"] = outcome.describe()
    except Exception as exc:
        results["privacy release (DP)"] = f"FAILED: {exc}"
    try:
        with session("retention-cron", "off") as s:
            applied = apply_retention(s)
        overdue = [t.table for r in applied.reports for t in r.tables if t.error or t.rows_remaining_expired]
        results["retention apply"] = "done" if applied.ok else f"FAILED: still past policy: {', '.join(overdue)}"
    except Exception as exc:
        results["retention apply"] = f"FAILED: {exc}"
    keys = store_dir / "state" / "ledger-keys"
    if not (keys / "ledger-signing.pem").exists():
        generate_key(keys)
    signing = CheckpointOptions(store_dir / "state" / "checkpoints", f"file:{(keys / 'ledger-signing.pem').resolve()}")
    try:
        with session("audit-cron") as s:
            sign_ledger_head(s, signing)
        results["ledger checkpoint"] = "signed (Ed25519)"
    except Exception as exc:
        results["ledger checkpoint"] = f"FAILED: {exc}"
    html = out_dir / "audit.html"
    try:
        with session("audit-cron") as s:
            audit = run_audit_job(s, checkpoints=signing, outputs=AuditOutputs(html=html))
        failing = [r.name for r in audit.run.results if r.status != "pass"]
        verdict = "all checks pass" if audit.ok else f"findings in: {', '.join(failing) or 'see report'}"
        results["audit run"] = f"{verdict} — {html}"
    except Exception as exc:
        results["audit run"] = f"FAILED: {exc}"
    return results


def run_jobs(store_dir: Path, started: float, out_dir: Path) -> dict[str, str]:
    """Run every job once on the demo's store; returns job name → where its output is (or its error)."""
    import datetime as dt

    from storage.backend import open_store

    results: dict[str, str] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    db = open_store({"path": str(store_dir)})
    try:
        try:
            from dashboards.attribution import refresh_gpu_attribution

            rows = refresh_gpu_attribution(db, "sovtel")
            results["gpu attribution"] = f"{rows} model-minute rows"
        except Exception as exc:  # a failed job is reported, never hidden
            results["gpu attribution"] = f"FAILED: {exc}"
        try:
            from quality.report import ReportOptions, run_report_job
            from quality.windows import Window

            now = dt.datetime.now(dt.UTC)
            window = Window(dt.datetime.fromtimestamp(started - 60, dt.UTC), now + dt.timedelta(seconds=1))
            path = out_dir / "quality.html"
            run_report_job(db, ReportOptions(window=window, drift_current_seconds=window.seconds / 2,
                                             html_path=path))
            results["quality report"] = str(path)
        except Exception as exc:
            results["quality report"] = f"FAILED: {exc}"
    finally:
        db.close()
    results.update(run_compliance_jobs(store_dir, out_dir))
    try:
        from dashboards.render import render_store

        results["dashboards"] = str(render_store(store_dir, out_dir / "dashboards"))
    except Exception as exc:
        results["dashboards"] = f"FAILED: {exc}"
    return results


def print_summary(summary: dict[str, Any]) -> None:
    """Render the demo summary for a person."""
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 120))
    sent, stored = summary["sent"], summary["stored"]
    con.print(f"[bold]sovtel demo[/bold] — {summary['duration_s']} s, store: {summary['store']}")
    con.print(
        f"spans sent {sent['spans']:,} · received {summary['received_spans']:,} · stored {stored['spans']:,}"
        f" · logs {stored['logs']:,} · metric points {stored['metrics']:,}"
    )
    t = Table("model", "provider", "requests", "input tok", "output tok", "mean ms", "p95 ms", "TTFT ms", "errors",
              title="per model (chat operations)")
    for m in summary["models"]:
        t.add_row(m["model"], m["provider"], f"{m['requests']:,}", f"{m['input_tokens']:,}", f"{m['output_tokens']:,}",
                  str(m["mean_latency_ms"]), str(m["p95_latency_ms"]), str(m["mean_ttft_ms"]), str(m["errors"]))
    con.print(t)
    d = Table("component:reason", "count", title="dropped / removed (by reason)")
    for k, v in summary["dropped"].items():
        d.add_row(k, f"{v:,.0f}")
    con.print(d)
    j = Table("job", "result", title="jobs (each run once)")
    for k, v in summary["jobs"].items():
        j.add_row(k, v)
    con.print(j)
    con.print(f"Query it: sovtel query --store {summary['store']} \"SELECT count() FROM sovtel.spans\"")
