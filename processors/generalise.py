"""Generalisation: coarser timestamps, IP addresses cut to network prefixes, locations reduced to
country or region, by the tier the pipeline feeds (stricter tiers, coarser data).

Presets per tier are in ``PRESETS``; any setting can be overridden. Works on whole columns; each
distinct IP value is parsed once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from processors.quarantine import MAP_COLUMNS
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import Batch, map_entries

Location = Literal["keep", "country", "region", "drop"]
Tier = Literal["local", "sovereign", "public"]


@dataclass(frozen=True)
class Settings:
    """Effective generalisation of one processor instance."""

    timestamp_bucket_s: float
    ipv4_prefix: int
    ipv6_prefix: int
    location: Location


PRESETS: dict[str, Settings] = {
    # In-country, high-security store: exact times, but no full client addresses or places.
    "local": Settings(timestamp_bucket_s=0, ipv4_prefix=24, ipv6_prefix=48, location="country"),
    "sovereign": Settings(timestamp_bucket_s=60, ipv4_prefix=24, ipv6_prefix=48, location="country"),
    # Leaves the jurisdiction: hour buckets, /16 and /32 networks, world regions only.
    "public": Settings(timestamp_bucket_s=3600, ipv4_prefix=16, ipv6_prefix=32, location="region"),
}

TIMESTAMP_COLUMNS = ("timestamp", "observed_timestamp", "start_timestamp")

DEFAULT_IP_KEYS: tuple[str, ...] = (
    "client.address",
    "server.address",
    "source.address",
    "destination.address",
    "network.peer.address",
    "network.local.address",
    "net.peer.ip",
    "net.host.ip",
    "net.sock.peer.addr",
    "http.client_ip",
    "host.ip",
)
# Finer than a country: removed from "country" level on.
FINE_LOCATION_KEYS: tuple[str, ...] = (
    "geo.locality.name",
    "geo.postal_code",
    "geo.location.lat",
    "geo.location.lon",
    "geo.region.iso_code",
    "client.geo.city_name",
    "client.geo.postal_code",
    "client.geo.region_iso_code",
    "client.geo.location.lat",
    "client.geo.location.lon",
)
COUNTRY_KEYS: tuple[str, ...] = ("geo.country.iso_code", "client.geo.country_iso_code")
REGION_KEY = "geo.subregion.name"

# ISO 3166-1 alpha-2 → UN M49 sub-region.
_M49 = {
    "Northern Europe": "AX DK EE FI FO GB GG IE IM IS JE LT LV NO SE SJ",
    "Western Europe": "AT BE CH DE FR LI LU MC NL",
    "Southern Europe": "AD AL BA ES GI GR HR IT ME MK MT PT RS SI SM VA XK",
    "Eastern Europe": "BG BY CZ HU MD PL RO RU SK UA",
    "Northern America": "BM CA GL PM US",
    "Latin America and the Caribbean": (
        "AG AI AR AW BB BL BO BQ BR BS BZ CL CO CR CU CW DM DO EC FK GD GF GP GT GY HN HT JM KN KY LC MF MQ MS "
        "MX NI PA PE PR PY SR SV SX TC TT UY VC VE VG VI"
    ),
    "Eastern Asia": "CN HK JP KP KR MN MO TW",
    "South-eastern Asia": "BN ID KH LA MM MY PH SG TH TL VN",
    "Southern Asia": "AF BD BT IN IR LK MV NP PK",
    "Central Asia": "KG KZ TJ TM UZ",
    "Western Asia": "AE AM AZ BH CY GE IL IQ JO KW LB OM PS QA SA SY TR YE",
    "Northern Africa": "DZ EG EH LY MA SD TN",
    "Sub-Saharan Africa": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ ER ET GA GH GM GN GQ GW KE KM LR LS MG ML MR MU MW MZ NA NE NG RE "
        "RW SC SH SL SN SO SS ST SZ TD TG TZ UG YT ZA ZM ZW"
    ),
    "Oceania": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV VU WF WS",
}
COUNTRY_REGION: dict[str, str] = {code: region for region, codes in _M49.items() for code in codes.split()}

_IPISH = re.compile(r"^\[?[0-9A-Fa-f:.]+\]?(?::\d{1,5})?$")


class Config(ComponentConfig):
    """A tier preset and optional overrides."""

    tier: Tier = Field(default="sovereign", description="Preset: local, sovereign or public.")
    timestamp_bucket_s: float | None = Field(default=None, ge=0)
    ipv4_prefix: int | None = Field(default=None, ge=0, le=32)
    ipv6_prefix: int | None = Field(default=None, ge=0, le=128)
    location: Location | None = None
    ip_attribute_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_IP_KEYS))
    any_ip_value: bool = Field(default=True, description="Also generalise any attribute value that is an IP address.")

    def settings(self) -> Settings:
        """The preset with overrides applied."""
        base = PRESETS[self.tier]
        return Settings(
            timestamp_bucket_s=base.timestamp_bucket_s if self.timestamp_bucket_s is None else self.timestamp_bucket_s,
            ipv4_prefix=base.ipv4_prefix if self.ipv4_prefix is None else self.ipv4_prefix,
            ipv6_prefix=base.ipv6_prefix if self.ipv6_prefix is None else self.ipv6_prefix,
            location=base.location if self.location is None else self.location,
        )


def ip_prefix(value: str, ipv4_prefix: int, ipv6_prefix: int) -> str | None:
    """The network of an address (``10.1.2.3`` → ``10.1.2.0/24``; a port is dropped); None if
    ``value`` is not an address."""
    text = value.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    prefix = ipv4_prefix if addr.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def floor_timestamps(column: pa.ChunkedArray, bucket_s: float) -> pa.Array:
    """Timestamps floored to multiples of ``bucket_s`` seconds (UTC epoch aligned)."""
    bucket_ns = int(bucket_s * 1_000_000_000)
    ns = column.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    return pa.array((ns // bucket_ns) * bucket_ns, type=pa.int64()).cast(column.type)


MapRewrite = Callable[[pa.Array, pa.Array], tuple[pa.Array, pa.Array, np.ndarray]]


def rewrite_map_column(column: pa.ChunkedArray, rewrite: MapRewrite) -> tuple[pa.ChunkedArray, int]:
    """Apply ``rewrite(keys, items) -> (keys, items, keep)`` to every entry of a map (or list of
    maps) column, dropping entries where ``keep`` is False; returns the column and how many
    entries were dropped."""
    entries = map_entries(column)
    new_keys, new_items, keep = rewrite(entries.keys, entries.items)
    return entries.rebuild(new_keys, new_items, keep), int(len(keep) - keep.sum())


class Generalise:
    """The processor."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.settings = cfg.settings()
        self.ip_keys = pa.array(sorted(set(cfg.ip_attribute_keys)), type=pa.string())
        self.fine_keys = pa.array(FINE_LOCATION_KEYS, type=pa.string())
        self.country_keys = pa.array(COUNTRY_KEYS, type=pa.string())

    def _rewrite(self, keys: pa.Array, items: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
        s = self.settings
        keep = np.ones(len(keys), dtype=bool)
        # IP addresses: by key, and (optionally) any value that parses as one.
        candidates = pc.is_in(keys, value_set=self.ip_keys)
        if self.cfg.any_ip_value:
            candidates = pc.or_(candidates, pc.match_substring_regex(items, _IPISH.pattern))
        if pc.any(candidates).as_py():
            idx = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
            values = items.take(pa.array(idx)).to_pylist()
            cache: dict[str, str | None] = {}
            for v in values:
                if v not in cache:
                    cache[v] = ip_prefix(v, s.ipv4_prefix, s.ipv6_prefix)
            replaced = [cache[v] if cache[v] is not None else v for v in values]
            full = items.to_pylist()
            for i, r in zip(idx.tolist(), replaced, strict=True):
                full[i] = r
            items = pa.array(full, type=pa.string())
        if s.location != "keep":
            fine = pc.is_in(keys, value_set=self.fine_keys).to_numpy(zero_copy_only=False)
            keep &= ~fine
            country = pc.is_in(keys, value_set=self.country_keys)
            if s.location == "drop":
                keep &= ~country.to_numpy(zero_copy_only=False)
            elif s.location == "region" and pc.any(country).as_py():
                regions = pa.array(
                    [COUNTRY_REGION.get(str(v).upper(), "Unknown") for v in items.to_pylist()], type=pa.string()
                )
                items = pc.if_else(country, regions, items)
                keys = pc.if_else(country, REGION_KEY, keys)
        return keys, items, keep

    def __call__(self, batch: Batch) -> Batch:
        """Generalise times, addresses and locations of the whole batch."""
        if batch.rows == 0:
            return batch
        table = batch.table
        s = self.settings
        if s.timestamp_bucket_s > 0:
            for name in TIMESTAMP_COLUMNS:
                if name in table.schema.names:
                    i = table.schema.get_field_index(name)
                    floored = floor_timestamps(table.column(i), s.timestamp_bucket_s)
                    table = table.set_column(i, table.schema.field(i), floored)
        for name in MAP_COLUMNS[batch.signal]:
            i = table.schema.get_field_index(name)
            new, removed = rewrite_map_column(table.column(i), self._rewrite)
            table = table.set_column(i, table.schema.field(i), new)
            if removed:
                self.ctx.telemetry.removed(batch.signal.value, removed, f"location_generalised:{name}")
        return batch.replace(table)


def create(ctx: ComponentContext, config: Config) -> Generalise:
    """Build the generalisation processor."""
    return Generalise(ctx, config)
