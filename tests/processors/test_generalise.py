"""Tests for processors.generalise: time buckets, IP prefixes and locations per tier preset."""

from __future__ import annotations

import datetime as dt

import pytest

from processors import generalise as g
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry

T = dt.datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=dt.UTC)


def run(cfg: g.Config, columns: dict[str, list[object]], signal: Signal = Signal.TRACES) -> Batch:
    c = ComponentContext(name="g", telemetry=Telemetry().component("g"))
    return g.create(c, cfg)(Batch(signal, table_from_columns(signal, columns)))


class TestGeneralise:
    @pytest.mark.parametrize(
        ("tier", "expected"),
        [
            ("local", T),
            ("sovereign", T.replace(second=0, microsecond=0)),
            ("public", T.replace(minute=0, second=0, microsecond=0)),
        ],
    )
    def test_timestamps_by_tier(self, tier: str, expected: dt.datetime) -> None:
        """Timestamps are floored to the tier's bucket (none, a minute, an hour)."""
        out = run(g.Config(tier=tier), {"timestamp": [T]})  # type: ignore[arg-type]
        assert out.table.column("timestamp")[0].as_py() == expected

    @pytest.mark.parametrize(
        ("value", "v4", "v6", "expected"),
        [
            ("85.12.33.201", 24, 48, "85.12.33.0/24"),
            ("85.12.33.201:443", 16, 48, "85.12.0.0/16"),
            ("2a02:8108:1234:5678::1", 24, 48, "2a02:8108:1234::/48"),
            ("[2a02:8108:1234:5678::1]:8443", 24, 32, "2a02:8108::/32"),
            ("api.example.eu", 24, 48, "api.example.eu"),
            ("not an ip", 24, 48, "not an ip"),
        ],
    )
    def test_ip_prefixes(self, value: str, v4: int, v6: int, expected: str) -> None:
        """Addresses (with or without port) become their network; other values are left."""
        out = run(g.Config(ipv4_prefix=v4, ipv6_prefix=v6), {"span_attributes": [[("client.address", value)]]})
        assert out.table.column("span_attributes")[0].as_py() == [("client.address", expected)]

    def test_any_attribute_holding_an_ip_is_generalised(self) -> None:
        """IPs under unknown keys and inside span events are generalised too; other values stay."""
        out = run(
            g.Config(),
            {
                "resource_attributes": [[("host.name", "gpu-node-07"), ("k8s.pod.ip", "10.4.5.6")]],
                "event_attributes": [[[("peer", "192.168.7.9:80")], [("n", "1.2")]]],
            },
        )
        assert out.table.column("resource_attributes")[0].as_py() == [
            ("host.name", "gpu-node-07"),
            ("k8s.pod.ip", "10.4.5.0/24"),
        ]
        assert out.table.column("event_attributes")[0].as_py() == [[("peer", "192.168.7.0/24")], [("n", "1.2")]]

    @pytest.mark.parametrize(
        ("location", "expected"),
        [
            ("keep", [("geo.country.iso_code", "PL"), ("geo.locality.name", "Kraków"), ("x", "y")]),
            ("country", [("geo.country.iso_code", "PL"), ("x", "y")]),
            ("region", [("geo.subregion.name", "Eastern Europe"), ("x", "y")]),
            ("drop", [("x", "y")]),
        ],
    )
    def test_locations(self, location: str, expected: list[tuple[str, str]]) -> None:
        """Locations are kept, cut to the country, replaced by the UN M49 region, or dropped."""
        attrs = [("geo.country.iso_code", "PL"), ("geo.locality.name", "Kraków"), ("x", "y")]
        out = run(g.Config(location=location), {"span_attributes": [attrs]})  # type: ignore[arg-type]
        assert out.table.column("span_attributes")[0].as_py() == expected

    def test_unknown_country_becomes_unknown_region(self) -> None:
        """A code not in the table generalises to 'Unknown', never passes through."""
        out = run(g.Config(location="region"), {"log_attributes": [[("geo.country.iso_code", "ZZ")]]}, Signal.LOGS)
        assert out.table.column("log_attributes")[0].as_py() == [("geo.subregion.name", "Unknown")]

    def test_removed_entries_are_counted(self) -> None:
        """Dropped location entries are counted as removed values."""
        c = ComponentContext(name="g", telemetry=Telemetry().component("g"))
        batch = Batch(
            Signal.TRACES, table_from_columns(Signal.TRACES, {"span_attributes": [[("geo.postal_code", "00-950")]]})
        )
        g.create(c, g.Config())(batch)
        assert (
            c.telemetry.telemetry.total("sovtel_removed_values_total", reason="location_generalised:span_attributes")
            == 1
        )

    def test_every_european_country_has_a_region(self) -> None:
        """All EU/EEA member codes map to a European sub-region."""
        eea = (
            *("AT", "BE", "BG", "HR", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT"),
            *("LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "CH", "GB"),
        )  # fmt: skip
        for code in eea:
            assert g.COUNTRY_REGION[code].endswith("Europe"), code
        assert g.COUNTRY_REGION["CY"] == "Western Asia"  # UN M49 places Cyprus in Western Asia

    def test_overrides_apply_on_top_of_the_preset(self) -> None:
        """An explicit setting wins over the tier preset."""
        s = g.Config(tier="public", ipv4_prefix=8).settings()
        assert (s.ipv4_prefix, s.ipv6_prefix, s.timestamp_bucket_s) == (8, 32, 3600)
