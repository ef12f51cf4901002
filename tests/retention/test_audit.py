"""Audit checks: a healthy deployment passes every check, each kind of breakage fails exactly its check,
and every run is recorded, rendered as HTML evidence and published as Prometheus gauges."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest
from prometheus_client import CollectorRegistry

from retention.aiact import AiActStore, ModelVersion
from retention.audit import CHECKS, AuditContext, AuditRun, CheckResult, run_audit
from retention.config import AuditConfig
from retention.erasure import Tier
from retention.ledger import Ledger
from retention.metrics import ComplianceMetrics
from retention.policies import RetentionPolicies
from retention.report import render_html, write_report
from tests.retention.conftest import NOW, count, insert_spans, stop_ttl_merges

MINUTE = dt.timedelta(minutes=1)
CONFIG = AuditConfig(lookback_hours=1, heartbeat_gap_s=300, pii_sample_rows=50)


def _heartbeats(store, db: str, node: str, times: list[dt.datetime]) -> None:
    values = ", ".join(f"(toDateTime64('{t:%Y-%m-%d %H:%M:%S}', 9, 'UTC'), '{node}', 'pipeline', 'up', 1)"
                       for t in times)
    store.command(f"INSERT INTO {db}.pipeline_health (timestamp, node, component, metric, value) VALUES {values}")


def _healthy(dbs, guard) -> Ledger:
    """Five documented requests in one (tenant, node, model) group and a heartbeat every minute for an hour."""
    store, db = dbs.store, dbs.tiers[0]
    # The heartbeats end now, not when the suite started: a slow run must not look like a silent collector.
    now = dt.datetime.now(dt.UTC)
    ledger = Ledger(store, dbs.aiact, guard=guard)
    AiActStore(store, dbs.aiact, ledger, guard).register_model(ModelVersion(
        model="m-1", version="1", hyperparameters={"temperature": 0.2}, training_data="public corpus",
        deployment_config={"gpus": 1}, documentation="model card"))
    insert_spans(store, db, [
        {"ts": now - 10 * MINUTE, "tenant_id": "t1", "node": "gpu-1", "request_model": "m-1",
         "response_model": "m-1", "input_messages": '[{"role":"user","content":"<EMAIL_ADDRESS:3f2a9c> asks"}]'}
        for _ in range(5)
    ])
    _heartbeats(store, db, "gpu-1", [now - i * MINUTE for i in range(59, -1, -1)])
    return ledger


def _context(dbs, guard, ledger: Ledger, **kwargs) -> AuditContext:
    return AuditContext([Tier(dbs.store, dbs.tiers[0])], dbs.store, dbs.aiact, ledger, RetentionPolicies(), CONFIG,
                        guard, **kwargs)


def _tamper_ledger(dbs, ledger):
    dbs.store.command(f"ALTER TABLE {ledger.table} UPDATE actor = 'someone' WHERE seq = 1 SETTINGS mutations_sync = 2")


def _gap(dbs, ledger):
    dbs.store.command(f"DELETE FROM {dbs.tiers[0]}.pipeline_health WHERE timestamp BETWEEN now() - INTERVAL 40 MINUTE "
                      "AND now() - INTERVAL 30 MINUTE")


def _leak(dbs, ledger):
    insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW - MINUTE, "tenant_id": "t1", "node": "gpu-1",
                                            "request_model": "m-1", "response_model": "m-1",
                                            "input_messages": "please mail jane.doe@example.com the invoice"}] * 5)


def _overdue(dbs, ledger):
    stop_ttl_merges(dbs.store, dbs.tiers[0], ("logs",))
    dbs.store.command(f"INSERT INTO {dbs.tiers[0]}.logs (timestamp, body) VALUES (now64() - INTERVAL 40 DAY, 'old')")


def _undocumented(dbs, ledger):
    insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW - MINUTE, "tenant_id": "t1", "node": "gpu-1",
                                            "request_model": "m-1", "response_model": "m-2"}] * 5)


def _small_group(dbs, ledger):
    insert_spans(dbs.store, dbs.tiers[0], [{"ts": NOW - MINUTE, "tenant_id": "t-rare", "node": "gpu-1",
                                            "request_model": "m-1", "response_model": "m-1"}])


def _unrecorded_read(dbs, ledger):
    ledger.append("audit.run", {"run_id": "0123456789abcdef", "ok": True, "results": []})


class TestChecks:
    def test_a_healthy_deployment_passes_and_the_run_is_recorded(self, dbs, guard):
        """Every check passes; the ledger gets an access entry, then the result; audit_results one row per check."""
        ledger = _healthy(dbs, guard)
        run = run_audit(_context(dbs, guard, ledger))
        assert {r.name: r.status for r in run.results} == {name: "pass" for name, _ in CHECKS}, [
            (r.name, r.summary) for r in run.results if r.status != "pass"]
        assert run.ok
        access, result = list(ledger.entries())[-2:]
        assert (access.action, access.data["access_id"]) == ("access", run.run_id)
        assert (result.action, result.seq, result.data["access_seq"]) == ("audit.run", run.ledger_seq, access.seq)
        assert count(dbs.store, f"SELECT count() FROM {dbs.aiact}.audit_results WHERE run_id = {{r:String}}",
                     {"r": run.run_id}) == len(CHECKS)

    @pytest.mark.parametrize(
        ("breakage", "check"),
        [
            (_tamper_ledger, "ledger_integrity"),
            (_gap, "collector_gaps"),
            (_leak, "pii_leaks"),
            (_overdue, "retention"),
            (_undocumented, "model_documentation"),
            (_small_group, "k_anonymity"),
            (_unrecorded_read, "access_audit"),
        ],
    )
    def test_each_breakage_fails_its_check_only(self, dbs, guard, breakage, check):
        """One kind of problem makes exactly its check fail, with findings, and the run not ok."""
        ledger = _healthy(dbs, guard)
        breakage(dbs, ledger)
        run = run_audit(_context(dbs, guard, ledger))
        failed = {r.name: r.findings for r in run.results if r.status != "pass"}
        assert list(failed) == [check], [(r.name, r.summary) for r in run.results]
        assert failed[check] >= 1
        assert not run.ok
        assert ledger.head().data["ok"] is False

    def test_no_heartbeats_is_a_finding(self, dbs, guard):
        """A tier whose collectors wrote no heartbeat cannot show continuous logging: the gap check fails."""
        ledger = _healthy(dbs, guard)
        dbs.store.command(f"TRUNCATE TABLE {dbs.tiers[0]}.pipeline_health")
        run = run_audit(_context(dbs, guard, ledger))
        gaps = next(r for r in run.results if r.name == "collector_gaps")
        assert gaps.status == "fail" and gaps.evidence["tiers_without_heartbeats"] == [dbs.tiers[0]]

    def test_a_check_that_crashes_is_an_error_and_the_others_still_run(self, dbs, guard):
        """An exception inside one check gives it status 'error' without hiding the other results."""
        ledger = _healthy(dbs, guard)

        def broken(_ctx):
            raise RuntimeError("boom")

        run = run_audit(_context(dbs, guard, ledger), checks=[("broken", broken), *CHECKS[:1]])
        assert [(r.name, r.status) for r in run.results] == [("broken", "error"), ("ledger_integrity", "pass")]
        assert not run.ok


class _Page(HTMLParser):
    """Collects what the report test looks at: check rows, statuses, external references, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.sections: set[str] = set()
        self.external: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-check" in a:
            self._row = a["data-check"]
        if tag == "span" and "data-status" in a and self._row:
            self.rows[self._row] = a["data-status"]
        if tag == "section" and "data-check" in a:
            self.sections.add(a["data-check"])
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("#"):
                self.external.append(a[key])

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        self.text.append(data)


class TestEvidence:
    def _run(self) -> AuditRun:
        results = [CheckResult(name, name.replace("_", " "), "fail" if name == "k_anonymity" else "pass",
                               f"summary of {name} <with markup>", 2 if name == "k_anonymity" else 0,
                               {"numbers": [1, 2, 3]}) for name, _ in CHECKS]
        return AuditRun("abcdef0123456789", "2026-11-24T00:00:00.000Z", "2026-11-24T00:00:05.000Z", results,
                        access_seq=4, ledger_seq=5, ledger_head_hash="9f" * 32, targets={"tiers": ["t"], "aiact": "a"})

    def test_report_lists_every_check_with_its_result(self, tmp_path):
        """The page is self-contained and lists each check with its result, the head hash and the time."""
        path = write_report(self._run(), tmp_path / "evidence.html")
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        assert page.rows == {name: ("fail" if name == "k_anonymity" else "pass") for name, _ in CHECKS}
        assert page.sections == {name for name, _ in CHECKS}
        text = "".join(page.text)
        assert "9f" * 32 in text and "2026-11-24T00:00:05.000Z" in text
        assert "summary of pii_leaks <with markup>" in text  # escaped in the source, shown as text
        assert (page.external, page.scripts) == ([], 0)

    def test_report_of_a_real_run_renders(self, dbs, guard):
        """A run against the engine renders with every check and the run's ledger head hash."""
        ledger = _healthy(dbs, guard)
        run = run_audit(_context(dbs, guard, ledger))
        page = _Page()
        page.feed(render_html(run))
        assert set(page.rows) == {name for name, _ in CHECKS}
        assert run.ledger_head_hash in "".join(page.text)

    def test_gauges_go_to_the_registry_passed_in(self, tmp_path):
        """Each check's status and findings become gauges on the given registry, written as a textfile."""
        registry = CollectorRegistry()
        metrics = ComplianceMetrics(registry)
        metrics.publish_audit(self._run(), 1_700_000_000.0)
        assert registry.get_sample_value("sovtel_audit_check_status", {"check": "k_anonymity"}) == 0.0
        assert registry.get_sample_value("sovtel_audit_check_findings", {"check": "k_anonymity"}) == 2.0
        assert registry.get_sample_value("sovtel_audit_check_status", {"check": "retention"}) == 1.0
        assert registry.get_sample_value("sovtel_audit_ok") == 0.0
        metrics.write_textfile(tmp_path / "sovtel.prom")
        assert 'sovtel_audit_check_status{check="pii_leaks"} 1.0' in (tmp_path / "sovtel.prom").read_text()
