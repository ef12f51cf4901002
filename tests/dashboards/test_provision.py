"""Tests for dashboards.provision against a local HTTP double of Grafana's API (Grafana cannot be installed here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from grafana_client.api import GrafanaApi

from app.dashboards import dashboards_group
from dashboards.definitions import DASHBOARDS
from dashboards.provision import (
    DataSourceError,
    ProvisionOptions,
    clickhouse_datasource,
    prometheus_datasource,
    provision,
    provision_grafana,
)
from tests.app.test_query import closed_port, run_sovtel


class FakeGrafana:
    """The few endpoints provisioning uses, with Grafana's status codes (404 missing, 409 duplicate)."""

    def __init__(self) -> None:
        self.folders: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.auth: set[str] = set()
        self.creates = 0


def handler_for(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def _route(self, method: str) -> None:
            state.auth.add(self.headers.get("Authorization", ""))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["api", "folders"]:
                if method == "GET" and len(parts) == 3:
                    f = state.folders.get(parts[2])
                    return self._send(200, f) if f else self._send(404, {"message": "folder not found"})
                if method == "POST":
                    body = self._body()
                    if body["uid"] in state.folders:
                        return self._send(409, {"message": "a folder with that uid already exists"})
                    state.creates += 1
                    state.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
                    return self._send(200, state.folders[body["uid"]])
                if method == "PUT":
                    state.folders[parts[2]].update(title=self._body()["title"])
                    return self._send(200, state.folders[parts[2]])
            if parts[:2] == ["api", "datasources"]:
                if method == "GET" and parts[2:3] == ["uid"]:
                    ds = state.datasources.get(parts[3])
                    return self._send(200, ds) if ds else self._send(404, {"message": "Data source not found"})
                if method == "POST":
                    body = self._body()
                    if body["uid"] in state.datasources:
                        return self._send(409, {"message": "data source with the same uid already exists"})
                    state.creates += 1
                    state.datasources[body["uid"]] = body
                    return self._send(200, {"datasource": body})
                if method == "PUT" and parts[2:3] == ["uid"]:
                    state.datasources[parts[3]] = self._body()
                    return self._send(200, {"datasource": state.datasources[parts[3]]})
            if parts[:2] == ["api", "dashboards"]:
                if method == "GET" and parts[2:3] == ["uid"]:
                    d = state.dashboards.get(parts[3])
                    return self._send(200, d) if d else self._send(404, {"message": "Dashboard not found"})
                if method == "POST" and parts[2:3] == ["db"]:
                    body = self._body()
                    if body.get("folderUid") not in state.folders:
                        return self._send(400, {"message": "folder not found"})
                    uid = body["dashboard"]["uid"]
                    if uid in state.dashboards and not body.get("overwrite"):
                        return self._send(412, {"message": "version-mismatch"})
                    if uid not in state.dashboards:
                        state.creates += 1
                    state.dashboards[uid] = {"dashboard": body["dashboard"], "meta": {"folderUid": body["folderUid"]}}
                    return self._send(200, {"uid": uid, "status": "success"})
            return self._send(404, {"message": f"no route {method} {self.path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    return Handler


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


SOURCES = [clickhouse_datasource("http://reader@clickhouse.sovtel.svc:8123", "sovtel", "s3cret"),
           prometheus_datasource("http://prometheus.sovtel.svc:9090")]


def test_provisioning_is_idempotent(grafana: tuple[FakeGrafana, str]) -> None:
    """A second run updates the folder, data sources and dashboards in place and creates nothing new."""
    state, url = grafana
    api = GrafanaApi.from_url(url, credential="token-1")
    first = provision(api, DASHBOARDS, SOURCES)
    creates = state.creates
    second = provision(api, DASHBOARDS, SOURCES)
    assert first.folder == "created" and set(first.dashboards.values()) == {"created"}
    assert set(first.datasources.values()) == {"created"}
    assert second.folder == "updated" and set(second.dashboards.values()) == {"updated"}
    assert set(second.datasources.values()) == {"updated"}
    assert state.creates == creates == 1 + len(SOURCES) + len(DASHBOARDS)
    assert set(state.dashboards) == {d.uid for d in DASHBOARDS}
    assert all(d["meta"]["folderUid"] == "sovtel" for d in state.dashboards.values())
    assert state.auth == {"Bearer token-1"}


def test_datasources_keep_secrets_in_secure_json(grafana: tuple[FakeGrafana, str]) -> None:
    """The ClickHouse password travels only in secureJsonData; the default database is the tier database."""
    state, url = grafana
    provision(GrafanaApi.from_url(url, credential="t"), DASHBOARDS[:1], SOURCES)
    ch = state.datasources["sovtel-clickhouse"]
    assert ch["secureJsonData"] == {"password": "s3cret"}
    assert "s3cret" not in json.dumps(ch["jsonData"])
    assert ch["jsonData"]["defaultDatabase"] == "sovtel" and ch["jsonData"]["username"] == "reader"


@pytest.mark.parametrize("url", ["clickhouse:8123", "http://reader:pw@ch:8123", "ftp://ch"])
def test_bad_clickhouse_urls_are_refused(url: str) -> None:
    """ClickHouse URLs without http(s), or with a password inside, are ValueErrors."""
    with pytest.raises(ValueError):
        clickhouse_datasource(url, "sovtel")


def test_cli_provisions_with_a_token_reference(grafana: tuple[FakeGrafana, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """provision --token env:NAME resolves the token and reports what it did."""
    state, url = grafana
    monkeypatch.setenv("GRAFANA_TOKEN", "from-env")
    result = CliRunner().invoke(dashboards_group, [
        "provision", "--url", url, "--token", "env:GRAFANA_TOKEN", "--clickhouse-url", "http://reader@ch:8123",
        "--prometheus-url", "http://prom:9090"])
    assert result.exit_code == 0, result.output
    assert "dashboard sovtel-sre: created" in result.output
    assert state.auth == {"Bearer from-env"}


@pytest.mark.parametrize("token", ["literal-token", "env:SOVTEL_TEST_UNSET_TOKEN"])
def test_cli_refuses_literal_or_missing_tokens(grafana: tuple[FakeGrafana, str], token: str) -> None:
    """A literal token, or a reference to an unset variable, exits 2 before anything is sent."""
    state, url = grafana
    result = CliRunner().invoke(dashboards_group, [
        "provision", "--url", url, "--token", token, "--clickhouse-url", "http://reader@ch:8123"])
    assert result.exit_code == 2
    assert state.auth == set()


def test_job_provisions_the_chosen_dashboards(grafana: tuple[FakeGrafana, str]) -> None:
    """provision_grafana builds both data sources, uses the token and puts the chosen dashboards in the folder."""
    state, url = grafana
    report = provision_grafana(ProvisionOptions(
        grafana_url=url, token="t-1", clickhouse_url="http://reader@ch:8123", clickhouse_password="pw",
        prometheus_url="http://prom:9090", folder="team", dashboards=DASHBOARDS[:1]))
    assert report.folder == "created" and report.dashboards == {DASHBOARDS[0].uid: "created"}
    assert set(report.datasources) == {"sovtel-clickhouse", "sovtel-prometheus"}
    assert set(state.folders) == {"team"} and state.auth == {"Bearer t-1"}


@pytest.mark.parametrize(("clickhouse", "prometheus"), [("ch:8123", None), ("http://ch:8123", "prom:9090")])
def test_job_sends_nothing_for_unusable_urls(grafana: tuple[FakeGrafana, str], clickhouse: str,
                                             prometheus: str | None) -> None:
    """An unusable data source URL is a DataSourceError raised before Grafana is contacted."""
    state, url = grafana
    with pytest.raises(DataSourceError):
        provision_grafana(ProvisionOptions(grafana_url=url, token="t", clickhouse_url=clickhouse,
                                           prometheus_url=prometheus))
    assert state.auth == set()


def test_an_unreachable_grafana_is_one_line() -> None:
    """`dashboards provision` against a port nothing listens on: one stderr line naming the URL, exit 1."""
    url = f"http://127.0.0.1:{closed_port()}"
    code, lines, stderr = run_sovtel("dashboards", "provision", "--url", url, "--token", "env:SOVTEL_TEST_TOKEN",
                                     "--clickhouse-url", "http://reader@127.0.0.1:8123", env={"SOVTEL_TEST_TOKEN": "t"})
    assert code == 1
    assert "Traceback" not in stderr
    assert lines == [f"sovtel dashboards provision: Grafana at {url} cannot be reached: Connection refused"], stderr


def test_a_server_that_is_not_grafana_is_one_line() -> None:
    """A loopback server answering HTML instead of Grafana's API gives one line and exit 1, not a traceback."""

    class Html(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<html><body>\\n<h1>Welcome</h1>\\n</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(dashboards_group, ["provision", "--url", url, "--token", "env:SOVTEL_TEST_TOKEN",
                                                       "--clickhouse-url", "http://reader@127.0.0.1:8123"],
                                    env={"SOVTEL_TEST_TOKEN": "t"})
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.strip().splitlines() == [
        f"sovtel dashboards provision: Grafana at {url}: the answer to a folder request is not Grafana's API "
        "(is the URL Grafana's?)"]


def test_render_from_a_store_that_does_not_answer_is_one_line(tmp_path) -> None:
    """`dashboards render` from a store URL nothing answers on exits 1 in one line and writes no page."""
    code, lines, stderr = run_sovtel("dashboards", "render", "--store", f"http://reader@127.0.0.1:{closed_port()}",
                                     "--out", str(tmp_path / "page"))
    assert code == 1 and "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("sovtel dashboards render: cannot open store"), stderr
    assert not (tmp_path / "page" / "index.html").exists()
    missing = CliRunner().invoke(dashboards_group, ["render", "--store", str(tmp_path / "none"), "--out",
                                                    str(tmp_path / "page")])
    assert missing.exit_code == 2 and "no such directory" in missing.stderr
