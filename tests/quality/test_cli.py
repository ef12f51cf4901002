"""Tests for ``sovtel quality report|drift``: outputs, exit codes and error messages."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.quality import quality_group
from storage.backend import Store
from tests.quality.conftest import DAY, START_NS, V1, V2, scored_traffic

HALF_NS = 1500 * 20_000_000_000
HALF = DAY + dt.timedelta(seconds=HALF_NS / 1e9)
NEXT_DAY = DAY + dt.timedelta(days=1)
REFERENCE = f"{DAY:%Y-%m-%dT%H:%M}/{HALF:%Y-%m-%dT%H:%M}"
CURRENT = f"{HALF:%Y-%m-%dT%H:%M}/{NEXT_DAY:%Y-%m-%dT%H:%M}"
WHOLE_DAY = f"{DAY:%Y-%m-%dT%H:%M}/{NEXT_DAY:%Y-%m-%dT%H:%M}"


@pytest.fixture
def shifted(store: Store, unique_db: str) -> Store:
    """v2's prompts grow by a factor 1.6 from 08:20 on; v1 stays as it was."""
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(5, 1500, {V1: 0.05, V2: 0.15}))
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(6, 1500, {V1: 0.05, V2: 0.15},
                                                          start_ns=START_NS + HALF_NS, prompt_scale={V2: 1.6}))
    return store


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(quality_group, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_drift_detected_exits_1(shifted: Store, chdb_dsn: str, unique_db: str) -> None:
    """A drifted model makes ``drift`` exit 1 and say which feature moved."""
    code, out, _ = invoke("drift", "--url", chdb_dsn, "--database", unique_db, "--model", V2,
                          "--reference", REFERENCE, "--current", CURRENT, "--min-samples", "50")
    assert code == 1
    assert "DRIFT" in out and "input_tokens" in out


def test_no_drift_exits_0_and_json(shifted: Store, chdb_dsn: str, unique_db: str, tmp_path: Path) -> None:
    """An unshifted model exits 0; --json prints the per-feature results; --metrics-file writes gauges."""
    metrics = tmp_path / "quality.prom"
    code, out, _ = invoke("drift", "--url", chdb_dsn, "--database", unique_db, "--model", V1,
                          "--reference", REFERENCE, "--current", CURRENT, "--min-samples", "50", "--json",
                          "--metrics-file", str(metrics))
    assert code == 0
    (report,) = json.loads(out)
    assert report["status"] == "no_drift" and report["features"]
    assert f'sovtel_quality_drift_detected{{model="{V1}"}} 0.0' in metrics.read_text()


def test_report_json_and_html(shifted: Store, chdb_dsn: str, unique_db: str, tmp_path: Path) -> None:
    """``report`` prints JSON with totals and comparisons and writes a self-contained HTML page."""
    page = tmp_path / "report.html"
    code, out, _ = invoke("report", "--url", chdb_dsn, "--database", unique_db,
                          "--window", WHOLE_DAY, "--json", "--html", str(page),
                          "--drift-current", "12h")
    assert code == 0, out
    data = json.loads(out)
    assert {t["model"] for t in data["totals"]} >= {V1, V2}
    assert data["comparisons"][0]["worse"] is True
    html = page.read_text()
    assert "<svg" in html and "<table" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_report_text(shifted: Store, chdb_dsn: str, unique_db: str) -> None:
    """Without --json the report is a readable table."""
    code, out, _ = invoke("report", "--url", chdb_dsn, "--database", unique_db, "--no-save",
                          "--window", WHOLE_DAY, "--drift-current", "off")
    assert code == 0 and "95% CI" in out and "Version comparisons" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["drift", "--model", "m", "--reference", "-2h", "--current", "-1h/now", "--url", "chdb://x"], 2, "START/END"),
        (["drift", "--model", "m", "--reference", "-2h/-1h", "--current", "-1h/now"], 2, "exactly one"),
        (["drift", "--model", "m", "--reference", "-2h/-1h", "--current", "-1h/now", "--store", "/nonexistent-dir"],
         2, "no such directory"),
        (["drift", "--reference", "-2h/-1h", "--current", "-1h/now", "--url", "chdb://x"], 2, "--model"),
        (["drift", "--model", "m", "--reference", "-2h/-1h", "--current", "-1h/now", "--url", "chdb://x",
          "--alpha", "2"], 2, "alpha"),
        (["report", "--window", "-1h/-2h", "--url", "chdb://x"], 2, "empty"),
        (["report", "--drift-current", "soon", "--url", "chdb://x"], 2, "duration"),
        (["report", "--url", "ftp://host"], 2, "http"),
    ],
)
def test_bad_input_exits_2(args: list[str], code: int, message: str) -> None:
    """Bad windows, missing or conflicting options and invalid thresholds exit 2 with a clear message."""
    got, out, err = invoke(*args)
    assert got == code
    assert message in out + err


def test_unmigrated_database_exits_3(store: Store, chdb_dsn: str, unique_db: str) -> None:
    """A database without the quality tables exits 3 and tells the operator to migrate."""
    code, _, err = invoke("drift", "--url", chdb_dsn, "--database", f"{unique_db}_none", "--model", V1,
                          "--reference", REFERENCE, "--current", CURRENT)
    assert code == 3 and "schema migrate" in err


def test_mounted_in_the_core_cli() -> None:
    """The core ``sovtel`` CLI mounts the group as ``sovtel quality``."""
    assert "quality" in cli.commands
    assert set(cli.commands["quality"].commands) >= {"report", "drift"}  # type: ignore[attr-defined]
