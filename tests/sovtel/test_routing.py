"""Fail-closed routing: tier normalisation, per-tier split among sinks, public checks, counters and the route log."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from sovtel.jurisdictions import COUNTRIES, JurisdictionError, normalise, within
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.routing import (
    TIERS,
    Residency,
    RouteLog,
    Router,
    SinkPolicy,
    check_tiers,
    identifiable,
    normalise_tiers,
    residency_problems,
    route_counter,
    route_problems,
    sink_policy,
)
from sovtel.telemetry import Telemetry

ALL = frozenset(TIERS)


def spans(tiers: list[str], ids: bool = True) -> Batch:
    n = len(tiers)
    cols: dict[str, list[str]] = {"tier": tiers}
    if ids:
        cols["trace_id"] = [f"t{i}" for i in range(n)]
    return Batch(Signal.TRACES, table_from_columns(Signal.TRACES, cols))


def metrics(tiers: list[str], tenants: list[str] | None = None) -> Batch:
    cols = {"tier": tiers, "tenant_id": tenants or [""] * len(tiers), "metric_name": ["m"] * len(tiers)}
    return Batch(Signal.METRICS, table_from_columns(Signal.METRICS, cols))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["local", "sovereign", "public"], ["local", "sovereign", "public"]),
        (["", "LOCAL", "internal"], ["local", "local", "local"]),
        ([], []),
    ],
)
def test_unknown_tiers_become_local(given: list[str], expected: list[str]) -> None:
    """Tier values outside local/sovereign/public (incl. empty and wrong case) normalise to local."""
    assert normalise_tiers(spans(given).table).column("tier").to_pylist() == expected


@pytest.mark.parametrize(
    ("signal_batch", "expected"),
    [
        (spans(["public", "public"]), [True, True]),  # trace ids identify a request
        (spans(["public"], ids=False), [False]),
        (metrics(["public", "public"], ["", "acme"]), [False, True]),
    ],
)
def test_identifiable_rows(signal_batch: Batch, expected: list[bool]) -> None:
    """A row is identifiable when any identifier or content column of its signal is non-empty."""
    assert identifiable(signal_batch.signal, signal_batch.table).to_pylist() == expected


class TestRouter:
    def router(self, sinks: dict[str, set[str]], carried: list[str] | None = None) -> tuple[Router, Telemetry]:
        tel = Telemetry()
        policies = {name: SinkPolicy("x", frozenset(t)) for name, t in sinks.items()}
        return Router("traces", policies, carried, route_counter(tel.registry)), tel

    def test_each_sink_gets_only_its_permitted_tiers(self) -> None:
        """Rows are split by tier; a sink permitting two tiers gets both, others only theirs."""
        r, tel = self.router({"de": {"local", "sovereign"}, "eu": {"sovereign"}, "pub": {"public"}})
        routed = r.route(metrics(["local", "sovereign", "public", "", "sovereign"]))
        got = {x.sink: x.batch.table.column("tier").to_pylist() for x in routed.routes}
        assert got == {"de": ["local", "sovereign", "local", "sovereign"], "eu": ["sovereign", "sovereign"],
                       "pub": ["public"]}
        assert routed.dropped == {}
        r.record(routed)
        assert tel.total("sovtel_routed_records_total", sink="de", tier="local", decision="delivered") == 2

    @pytest.mark.parametrize(
        ("sinks", "carried", "tiers", "dropped"),
        [
            ({"eu": {"sovereign"}}, None, ["local", "sovereign"], {"no_permitted_sink:local": 1}),
            ({"eu": {"sovereign", "local"}}, ["sovereign"], ["local", "sovereign"], {"tier_not_carried:local": 1}),
            ({"pub": {"public"}}, None, ["public", "public"], {"public_identifiable:public": 2}),
            ({"all": set(TIERS)}, None, ["", "x"], {}),
        ],
    )
    def test_rows_without_a_permitted_sink_are_dropped_not_rerouted(
        self, sinks: dict[str, set[str]], carried: list[str] | None, tiers: list[str], dropped: dict[str, int]
    ) -> None:
        """A row no permitted sink takes is dropped and counted by reason, never given to another sink."""
        r, tel = self.router(sinks, carried)
        routed = r.route(spans(tiers))
        assert routed.dropped == dropped
        delivered = [t for x in routed.routes for t in x.batch.table.column("tier").to_pylist()]
        assert len(delivered) == len(tiers) - sum(dropped.values())
        for x in routed.routes:
            assert set(x.batch.table.column("tier").to_pylist()) <= set(sinks[x.sink])
        r.record(routed)
        for reason, n in dropped.items():
            why, _, tier = reason.partition(":")
            assert tel.total("sovtel_routed_records_total", tier=tier, decision=f"dropped:{why}") == n

    def test_route_log_holds_counts_not_identifiers(self, tmp_path: Path) -> None:
        """The route log records tier, sink, decision and rows per minute, and no value of the rows."""
        log = RouteLog(tmp_path / "audit" / "routes.jsonl", flush_interval_s=3600)
        r = Router("traces", {"de": SinkPolicy("de", frozenset({"local"}))}, route_log=log)
        batch = spans(["local", "local", "sovereign"])
        r.record(r.route(batch))
        log.flush()
        lines = [json.loads(x) for x in (tmp_path / "audit" / "routes.jsonl").read_text().splitlines()]
        assert {(x["tier"], x["sink"], x["decision"], x["rows"]) for x in lines} == {
            ("local", "de", "delivered", 2), ("sovereign", "-", "dropped:no_permitted_sink", 1)}
        text = (tmp_path / "audit" / "routes.jsonl").read_text()
        assert "t0" not in text and "t1" not in text


@pytest.mark.parametrize(
    ("config", "policy"),
    [
        (object(), SinkPolicy()),
        (type("C", (), {"tiers": ["public"], "jurisdiction": "eu"})(), SinkPolicy("EU", frozenset({"public"}))),
        (SimpleNamespace(tiers=["local"], jurisdiction=" de ", host="ch.de.example"),
         SinkPolicy("DE", frozenset({"local"}), on_node=False)),
        (SimpleNamespace(tiers=None, jurisdiction=None, dsn="chdb:///var/lib/sovtel/store"), SinkPolicy()),
        (SimpleNamespace(tiers=None, jurisdiction="mars", dsn="https://ch.example:8443"),
         SinkPolicy("mars", frozenset(TIERS), on_node=False)),
    ],
)
def test_sink_policy_from_config(config: object, policy: SinkPolicy) -> None:
    """An exporter config without tier fields permits all tiers; a jurisdiction code is normalised to upper
    case (an unknown one kept as written, for validation to report), and a server is not on the node."""
    assert sink_policy(config) == policy
    assert policy.tiers <= ALL


class TestRouteProblems:
    """The configuration checks take plain pipeline and exporter data, not a whole configuration."""

    @pytest.mark.parametrize(
        ("carried", "permitted", "needles"),
        [
            (None, None, []),
            (["local"], ["local", "sovereign"], []),
            (None, ["public"], ["tier 'local' would go to a sink", "tier 'sovereign' would go to a sink"]),
            (["local"], ["public"], ["tier 'local' would go to a sink", "permits none of the tiers"]),
        ],
    )
    def test_every_unroutable_tier_and_idle_exporter_is_named(
        self, carried: list[str] | None, permitted: list[str] | None, needles: list[str]
    ) -> None:
        """A carried tier no exporter permits, and an exporter permitting no carried tier, are problems."""
        pipelines = {"traces": SimpleNamespace(tiers=carried, exporters=["clickhouse/eu"])}
        exporters = {"clickhouse/eu": SimpleNamespace(tiers=permitted, jurisdiction="eu")}
        problems = route_problems(pipelines, exporters)
        assert len(problems) == len(needles)
        for problem, needle in zip(problems, needles, strict=True):
            assert problem.startswith("service.pipelines.traces: ") and needle in problem

    def test_undefined_exporters_are_left_to_the_reference_check(self) -> None:
        """A pipeline whose exporters are not configured has no routing problem of its own."""
        assert route_problems({"traces": SimpleNamespace(tiers=None, exporters=["nowhere"])}, {}) == []

    def test_unknown_tier_names_are_reported_where_given(self) -> None:
        """check_tiers prefixes each unknown tier with where it was written."""
        assert check_tiers(["local", "secret"], "line 3: tiers") == [
            "line 3: tiers: unknown tier 'secret' (use local, sovereign, public)"]


class TestJurisdictionCodes:
    """Jurisdictions are ISO 3166-1 alpha-2 codes plus the EU and EEA groups, whatever the case."""

    @pytest.mark.parametrize(("given", "code"), [("de", "DE"), (" Eu ", "EU"), ("eea", "EEA"), ("US", "US")])
    def test_codes_are_normalised(self, given: str, code: str) -> None:
        """Case and surrounding blanks do not matter; the stored code is upper case."""
        assert normalise(given) == code

    @pytest.mark.parametrize(("given", "hint"), [
        ("global", "ISO 3166-1 alpha-2"), ("UK", "writes GB"), ("EL", "writes GR"), ("xx", "EU / EEA"),
        ("Germany", "such as DE"),
    ])
    def test_free_text_is_refused_with_a_hint(self, given: str, hint: str) -> None:
        """Anything but a known code is an error that says what to write instead."""
        with pytest.raises(JurisdictionError, match=hint):
            normalise(given)

    def test_a_group_is_not_a_country(self) -> None:
        """Where only a country will do (the operator's country), EU is refused."""
        with pytest.raises(JurisdictionError, match="not a country"):
            normalise("eu", countries_only=True)

    def test_every_assigned_country_is_known(self) -> None:
        """All 249 assigned ISO 3166-1 alpha-2 codes are accepted."""
        assert len(COUNTRIES) == 249 and {"DE", "FR", "NO", "CH", "US", "GB"} <= COUNTRIES

    @pytest.mark.parametrize(("code", "allowed", "inside"), [
        ("DE", ["EU"], True), ("EU", ["EEA"], True), ("EEA", ["EU"], False), ("NO", ["EU", "EEA"], True),
        ("NO", ["EU"], False), ("CH", ["EU", "EEA"], False), ("US", ["DE"], False), ("DE", ["DE"], True),
        ("EU", ["DE"], False),
    ])
    def test_within_compares_the_countries_covered(self, code: str, allowed: list[str], inside: bool) -> None:
        """A code lies within others when every country it covers is covered by them."""
        assert within(code, allowed) is inside


class TestResidencyProblems:
    """Each tier a sink permits must be allowed to live in the sink's jurisdiction."""

    @pytest.mark.parametrize(
        ("sink", "residency", "needles"),
        [
            # The case: a US store permitting local and sovereign.
            ({"jurisdiction": "us", "tiers": ["local", "sovereign"], "host": "h"}, Residency("DE"),
             ["'US' is outside the operator's country (DE", "'US' is outside EU, EEA"]),
            ({"jurisdiction": "de", "tiers": ["local", "sovereign", "public"], "host": "h"}, Residency("DE"), []),
            ({"jurisdiction": "EU", "tiers": ["local"], "host": "h"}, Residency("DE"),
             ["'EU' is outside the operator's country"]),
            ({"jurisdiction": "EU", "tiers": ["sovereign", "public"], "host": "h"}, Residency("DE"), []),
            ({"jurisdiction": "EEA", "tiers": ["sovereign"], "host": "h"}, Residency("DE", ("EU",)),
             ["'EEA' is outside EU (service.sovereign_jurisdictions)"]),
            ({"jurisdiction": "CH", "tiers": ["sovereign"], "host": "h"}, Residency("DE", ("EEA", "CH")), []),
            ({"jurisdiction": "US", "tiers": ["public"], "host": "h"}, Residency("DE"), []),
            ({"jurisdiction": "global", "tiers": ["public"], "host": "h"}, Residency("DE"),
             ["unknown jurisdiction 'global'"]),
            ({"jurisdiction": "DE", "tiers": ["local"], "host": "h"}, Residency(),
             ["service.country is not set"]),
            ({"tiers": ["sovereign"], "host": "h"}, Residency("DE"), ["must declare its jurisdiction"]),
            ({"tiers": ["public"], "host": "h"}, Residency("DE"), []),
            ({"tiers": None, "path": "/store"}, Residency(), []),
            ({"tiers": None, "path": "/store"}, Residency("US"),
             ["store on the node (in US, service.country) is outside EU, EEA"]),
        ],
    )
    def test_each_mismatch_is_named(self, sink: dict[str, object], residency: Residency,
                                    needles: list[str]) -> None:
        """A mismatch names the code, where the tier must stay and the setting that says so; fits pass."""
        config = SimpleNamespace(**{"jurisdiction": None, "host": None, "dsn": None, "path": None, **sink})
        problems = residency_problems({"clickhouse/x": config}, residency)
        assert [name for name, _ in problems] == ["clickhouse/x"] * len(needles)
        for (_, problem), needle in zip(problems, needles, strict=True):
            assert needle in problem, problem
