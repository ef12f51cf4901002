"""Prometheus gauges of the audit and retention jobs, on a registry passed in (never the global one), written
as a node-exporter textfile or pushed to a Pushgateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

if TYPE_CHECKING:
    from retention.audit import AuditRun
    from retention.enforce import ApplyReport

STATUS_VALUE = {"pass": 1.0, "skipped": 1.0, "fail": 0.0, "error": -1.0}
JOB = "sovtel_compliance"


class ComplianceMetrics:
    """Audit results per check, the ledger head, and rows removed by retention."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.check_status = Gauge(
            "sovtel_audit_check_status", "Last result of an audit check: 1 pass (or skipped), 0 fail, -1 error.",
            ["check"], registry=registry)
        self.check_findings = Gauge(
            "sovtel_audit_check_findings", "Findings of an audit check in its last run.", ["check"], registry=registry)
        self.audit_ok = Gauge("sovtel_audit_ok", "1 when every check of the last audit run passed.", registry=registry)
        self.last_run = Gauge("sovtel_audit_last_run_timestamp_seconds", "Unix time the last audit run finished.",
                              registry=registry)
        self.ledger_head = Gauge("sovtel_ledger_head_seq", "Sequence number of the ledger head.", registry=registry)
        self.retention_removed = Gauge(
            "sovtel_retention_rows_removed", "Rows past their policy removed by the last retention apply.",
            ["table"], registry=registry)
        self.retention_remaining = Gauge(
            "sovtel_retention_rows_overdue", "Rows still past their policy after the last retention apply.",
            ["table"], registry=registry)

    def publish_audit(self, run: AuditRun, finished_unix: float) -> None:
        """Set the gauges of one audit run."""
        for result in run.results:
            self.check_status.labels(result.name).set(STATUS_VALUE[result.status])
            self.check_findings.labels(result.name).set(result.findings)
        self.audit_ok.set(1.0 if run.ok else 0.0)
        self.last_run.set(finished_unix)
        if run.ledger_seq is not None:
            self.ledger_head.set(run.ledger_seq)

    def publish_apply(self, report: ApplyReport) -> None:
        """Set the gauges of one retention run."""
        for t in report.tables:
            self.retention_removed.labels(t.table).set(t.rows_removed)
            self.retention_remaining.labels(t.table).set(t.rows_remaining_expired)
        if report.ledger_seq is not None:
            self.ledger_head.set(report.ledger_seq)

    def write_textfile(self, path: Path) -> None:
        """Write the registry for node_exporter's textfile collector (atomically, as it requires)."""
        write_to_textfile(str(path), self.registry)

    def push(self, gateway: str, job: str = JOB) -> None:
        """Push the registry to a Prometheus Pushgateway (replacing this job's previous group)."""
        push_to_gateway(gateway, job=job, registry=self.registry)
