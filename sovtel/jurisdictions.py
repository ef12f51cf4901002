"""Jurisdictions as codes: ISO 3166-1 alpha-2 countries and the groups ``EU`` and ``EEA``.

A code stands for the set of countries whose law applies; one jurisdiction lies within others when
its countries are a subset of theirs (``DE`` lies within ``EU``, ``EEA`` does not: it adds IS, LI and NO).
Input is case-insensitive and normalised to upper case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# ISO 3166-1 alpha-2, the officially assigned codes (249).
_ISO_3166_1 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT
HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS
LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI
NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG
SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
_EU_27 = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"

COUNTRIES: frozenset[str] = frozenset(_ISO_3166_1.split())
EU_MEMBERS: frozenset[str] = frozenset(_EU_27.split())
GROUPS: Mapping[str, frozenset[str]] = {
    "EU": EU_MEMBERS,
    "EEA": EU_MEMBERS | {"IS", "LI", "NO"},
}

# Codes people write that ISO 3166-1 does not assign (exceptionally reserved), and the assigned one.
_RESERVED = {"UK": "GB", "EL": "GR"}


class JurisdictionError(ValueError):
    """A jurisdiction that is not a known code; the message says what to write instead."""


def normalise(code: str, *, countries_only: bool = False) -> str:
    """The code in upper case; raises JurisdictionError for anything that is not a known code."""
    value = code.strip().upper()
    if value in COUNTRIES or (value in GROUPS and not countries_only):
        return value
    if value in _RESERVED:
        hint = f"ISO 3166-1 writes {_RESERVED[value]}"
    elif value in GROUPS:
        hint = "a group is not a country: give the operator's country, e.g. DE"
    else:
        hint = "use an ISO 3166-1 alpha-2 country code such as DE" + ("" if countries_only else ", or EU / EEA")
    kind = "country" if countries_only else "jurisdiction"
    raise JurisdictionError(f"unknown {kind} {code!r} ({hint})")


def countries(code: str) -> frozenset[str]:
    """The countries a (normalised) code covers."""
    return GROUPS.get(code, frozenset({code}))


def within(code: str, allowed: Iterable[str]) -> bool:
    """Whether every country of ``code`` lies in one of the ``allowed`` codes (all normalised)."""
    covered: set[str] = set()
    for a in allowed:
        covered |= countries(a)
    return countries(code) <= covered
