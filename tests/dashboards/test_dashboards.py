"""Tests for the dashboards: every panel's SQL returns rows on a demo-like store; JSON export; HTML render; CLI."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.dashboards import dashboards_group
from dashboards import grafana
from dashboards.attribution import refresh_gpu_attribution
from dashboards.definitions import DASHBOARDS, UnknownDashboardError, select_dashboards
from dashboards.macros import TimeRange, expand
from dashboards.model import DATASOURCE_UIDS, Kind, Panel, Source
from dashboards.render import render_html, render_store, run_panel
from tests.dashboards.conftest import DemoStore

GENERATED = Path(__file__).resolve().parents[2] / "dashboards" / "generated"
CLICKHOUSE_PANELS = [(d, p) for d in DASHBOARDS for p in d.panels if p.source is Source.CLICKHOUSE]


@pytest.mark.parametrize(("dashboard", "panel"), CLICKHOUSE_PANELS,
                         ids=[f"{d.uid}:{p.title}" for d, p in CLICKHOUSE_PANELS])
def test_panel_sql_returns_rows(demo_store: DemoStore, dashboard, panel: Panel) -> None:
    """The panel's SQL, macros expanded, runs on the real schema after a demo-like load and returns rows."""
    result = run_panel(demo_store.store, dashboard, panel, demo_store.time_range,
                       {"aiact_db": demo_store.aiact_database})
    assert result.error is None, result.sql
    assert result.rows, result.sql
    if panel.kind is Kind.TIMESERIES:
        assert result.columns[0] == "time"


def test_panels_honour_the_time_range(demo_store: DemoStore) -> None:
    """A time range with no data makes the time-filtered panels return nothing (the filter is applied)."""
    r = demo_store.time_range
    empty = TimeRange(r.start - timedelta(days=3), r.start - timedelta(days=2), 60.0)
    d = DASHBOARDS[0]
    assert not run_panel(demo_store.store, d, d.panels[0], empty).rows


class TestStoredAggregates:
    def test_gpu_rows_reach_gpu_metrics_through_the_metrics_table(self, demo_store: DemoStore) -> None:
        """hw.* rows with hw.type=gpu inserted into metrics are copied into gpu_metrics, flagged simulated."""
        rows = demo_store.store.query_rows(
            "SELECT count(), countIf(simulated), uniqExact(gpu_uuid), uniqExact(metric) FROM gpu_metrics")
        total, simulated, gpus, metrics = rows[0]
        assert total > 0 and simulated == total and gpus == 2 and metrics >= 20

    def test_other_metrics_are_not_copied(self, demo_store: DemoStore) -> None:
        """A non-GPU metric row stays in metrics only."""
        s = demo_store.store
        s.command("INSERT INTO metrics (timestamp, start_timestamp, metric_name, value, attributes) VALUES "
                  "(now64(9), now64(9), 'http.server.duration', 1, map('hw.type', 'cpu'))")
        assert s.query_rows("SELECT count() FROM gpu_metrics WHERE metric = 'http.server.duration'") == [(0,)]

    def test_attribution_splits_each_minute_by_token_share(self, demo_store: DemoStore) -> None:
        """Per node-minute, model token shares sum to one and attributed GPU-seconds and joules add up to the
        node's busy GPU-seconds and energy (at most 2 GPUs x 60 s and 2 x 700 W x 60 s)."""
        rows = demo_store.store.query_rows(
            "SELECT node, minute, sum(token_share), sum(gpu_seconds), sum(energy_j), count() "
            "FROM gpu_request_attribution_live GROUP BY node, minute")
        assert len(rows) >= 8
        for _node, _minute, share, gpu_seconds, energy, models in rows:
            assert share == pytest.approx(1.0)
            assert models == 3
            assert 0 < gpu_seconds <= 2 * 60 + 1e-6
            assert 2 * 70 * 55 < energy <= 2 * 700 * 60

    def test_refresh_job_stores_the_live_rows_idempotently(self, demo_store: DemoStore) -> None:
        """The attribution job writes the live view's complete minutes; running it twice keeps one row each."""
        s = demo_store.store
        first = refresh_gpu_attribution(s, demo_store.database, lookback_minutes=60)
        second = refresh_gpu_attribution(s, demo_store.database, lookback_minutes=60)
        stored = s.query_rows("SELECT count() FROM gpu_request_attribution FINAL")[0][0]
        assert first == second == stored > 0

    @pytest.mark.parametrize(("database", "lookback"), [("bad-name", 10), ("sovtel", 0)])
    def test_refresh_job_rejects_bad_arguments(self, demo_store: DemoStore, database: str, lookback: int) -> None:
        """A database that is not an identifier, or an empty look-back, is a ValueError."""
        with pytest.raises(ValueError):
            refresh_gpu_attribution(demo_store.store, database, lookback)


class TestGrafanaJson:
    @pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
    def test_committed_json_is_up_to_date(self, dashboard) -> None:
        """dashboards/generated/<uid>.json is exactly what the builder produces now."""
        assert (GENERATED / f"{dashboard.uid}.json").read_text(encoding="utf-8") == grafana.to_json(dashboard)

    @pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
    def test_panels_are_complete(self, dashboard) -> None:
        """Every panel has a unique id, a known data source and its query; rows separate the sections."""
        model = grafana.build(dashboard)
        panels = [p for p in model["panels"] if p["type"] != "row"]
        assert len(panels) == len(dashboard.panels)
        assert len({p["id"] for p in model["panels"]}) == len(model["panels"])
        assert [p["title"] for p in model["panels"] if p["type"] == "row"] == [s.title for s in dashboard.sections]
        for spec, p in zip(dashboard.panels, panels, strict=True):
            assert p["datasource"]["uid"] == DATASOURCE_UIDS[spec.source]
            target = p["targets"][0]
            assert target.get("rawSql", target.get("expr")) == spec.query
            assert p["type"] == spec.kind.value
        assert {v["name"] for v in model["templating"].get("list", [])} == {v.name for v in dashboard.variables}

    def test_grafana_would_expand_every_clickhouse_query(self) -> None:
        """Every ClickHouse query uses only known macros and the dashboard's own variables."""
        for d in DASHBOARDS:
            for p in d.panels:
                if p.source is Source.CLICKHOUSE:
                    assert "$" not in expand(p.query, TimeRange.last(3600), d.variable_values())


class TestRender:
    def test_page_has_every_panel_and_fetches_nothing(self, demo_store: DemoStore) -> None:
        """The page shows every panel, draws SVG charts, reports no failed query and loads no external resource."""
        page = render_html(demo_store.store, time_range=demo_store.time_range,
                           variables={"aiact_db": demo_store.aiact_database})
        for d in DASHBOARDS:
            for p in d.panels:
                assert f'data-panel="{p.title}"' in page.replace("&#x27;", "'"), p.title
        timeseries = sum(1 for _, p in CLICKHOUSE_PANELS if p.kind is Kind.TIMESERIES)
        assert page.count("<polyline") >= timeseries
        assert "Query failed" not in page and "No data in this time range" not in page
        assert not re.search(r'(src|href)="(https?:)?//', page)
        assert "<script" not in page

    def test_render_store_writes_index_html(self, demo_store: DemoStore, tmp_path: Path) -> None:
        """render_store opens the store, writes out/index.html and returns its path."""
        path = render_store(demo_store.dsn, tmp_path / "out", database=demo_store.database,
                            aiact_database=demo_store.aiact_database)
        assert path == tmp_path / "out" / "index.html"
        assert "GPU utilisation" in path.read_text(encoding="utf-8")


class TestSelect:
    def test_no_uid_selects_every_dashboard(self) -> None:
        """Without uids every dashboard is selected, in the usual order."""
        assert select_dashboards() == list(DASHBOARDS)

    def test_uids_select_in_the_order_given(self) -> None:
        """Named dashboards come back in the order they were named."""
        uids = [DASHBOARDS[-1].uid, DASHBOARDS[0].uid]
        assert [d.uid for d in select_dashboards(uids)] == uids

    def test_unknown_uid_names_the_known_ones(self) -> None:
        """An unknown uid is an error that lists the uids there are."""
        with pytest.raises(UnknownDashboardError, match=DASHBOARDS[0].uid):
            select_dashboards(["nope"])


class TestCli:
    def test_export_writes_one_file_per_dashboard(self, tmp_path: Path) -> None:
        """export --out writes <uid>.json for each dashboard, as valid JSON."""
        result = CliRunner().invoke(dashboards_group, ["export", "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        files = sorted(p.name for p in tmp_path.glob("*.json"))
        assert files == sorted(f"{d.uid}.json" for d in DASHBOARDS)
        assert all(json.loads((tmp_path / f).read_text())["uid"] for f in files)

    def test_unknown_dashboard_is_a_usage_error(self, tmp_path: Path) -> None:
        """Naming a dashboard that does not exist exits 2."""
        result = CliRunner().invoke(dashboards_group, ["export", "--out", str(tmp_path), "--dashboard", "nope"])
        assert result.exit_code == 2

    def test_render_command(self, demo_store: DemoStore, tmp_path: Path) -> None:
        """render --store --out prints the page it wrote."""
        result = CliRunner().invoke(dashboards_group, [
            "render", "--store", demo_store.dsn, "--out", str(tmp_path), "--database", demo_store.database,
            "--aiact-database", demo_store.aiact_database])
        assert result.exit_code == 0, result.output
        assert Path(result.output.strip()).is_file()

    def test_dashboards_group_mounts_in_sovtel(self) -> None:
        """The core CLI mounts the group as `sovtel dashboards`."""
        assert "dashboards" in cli.commands
