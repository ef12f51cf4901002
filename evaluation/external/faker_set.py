"""The Faker locales set: names, postal addresses, phone numbers, card numbers, IBANs and national ids
made by Faker's own providers for eight locales of the seven languages, each put alone in a neutral
carrier sentence, and telemetry-like negatives made by Faker (user agents, UUIDs, hex digests, file
paths, URLs, ISO dates, platform versions). Which provider makes what, and the carriers, are the
data file ``data/faker_set.yaml``; the generator is deterministic for a seed.

Requires ``faker`` (installed with the ``bench`` extra).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluation.datafiles import DataFileError, load, mapping, per_language, text
from evaluation.external.samples import ExternalSample, Negative
from evaluation.external.score import scorable
from evaluation.pii.corpus import Planted

if TYPE_CHECKING:
    from faker import Faker

SOURCE = "faker"
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl")


@dataclass(frozen=True)
class FakerSetSpec:
    """The data file, read: locales and their languages, providers per entity and locale, negatives,
    and the carriers."""

    locales: dict[str, str]
    entities: dict[str, dict[str, tuple[Provider, ...]]]  # entity -> locale (or "default") -> providers
    negatives: dict[str, tuple[Provider, ...]]  # kind -> providers
    line_join: str
    carriers: dict[str, tuple[str, ...]]

    def providers(self, entity: str, locale: str) -> tuple[Provider, ...]:
        """The Faker provider methods that make ``entity`` values in ``locale``."""
        table = self.entities[entity]
        return table.get(locale, table["default"])


@dataclass(frozen=True)
class Provider:
    """A Faker provider method and the keyword arguments it is called with."""

    method: str
    kwargs: tuple[tuple[str, Any], ...] = ()


def _provider(value: object, where: str) -> Provider:
    """``method`` or ``{method: {argument: value, …}}``."""
    if isinstance(value, str):
        return Provider(value)
    table = mapping(value, where)
    if len(table) != 1:
        raise DataFileError(f"{where}: expected a method name or {{method: {{arguments}}}}")
    ((method, kwargs),) = table.items()
    return Provider(method, tuple(sorted(mapping(kwargs, f"{where}.{method}").items())))


def _providers(value: object, where: str) -> tuple[Provider, ...]:
    if isinstance(value, list) and value:
        return tuple(_provider(v, f"{where}[{i}]") for i, v in enumerate(value))
    return (_provider(value, where),)


def load_spec() -> FakerSetSpec:
    """Read and check ``data/faker_set.yaml``."""
    raw = load("evaluation.external", "faker_set.yaml")
    locales = {k: text(v, f"locales.{k}") for k, v in mapping(raw.get("locales"), "locales").items()}
    for locale, lang in locales.items():
        if lang not in LANGUAGES:
            raise DataFileError(f"locales.{locale}: unknown language {lang!r}")
    entities: dict[str, dict[str, tuple[Provider, ...]]] = {}
    for entity, table in mapping(raw.get("entities"), "entities").items():
        rows = mapping(table, f"entities.{entity}")
        if "default" not in rows:
            raise DataFileError(f"entities.{entity}: needs a default provider")
        entities[entity] = {k: _providers(v, f"entities.{entity}.{k}") for k, v in rows.items()}
    negatives = {k: _providers(v, f"negatives.{k}") for k, v in mapping(raw.get("negatives"), "negatives").items()}
    carriers = per_language(raw.get("carriers"), LANGUAGES, "carriers")
    for lang, lines in carriers.items():
        for i, line in enumerate(lines):
            if line.count("{value}") != 1:
                raise DataFileError(f"carriers.{lang}[{i}]: needs exactly one {{value}}")
    return FakerSetSpec(locales, entities, negatives, text(raw.get("line_join"), "line_join"), carriers)


def _titles(fake: Faker) -> tuple[list[str], list[str]]:
    """The locale's name prefixes and suffixes (Dr., Prof., B.Sc., …), longest first: a title is not
    the person's name, and the leak rule would count a surviving "PhD" as a name part."""
    person = next(p for p in fake.providers if type(p).__module__.startswith("faker.providers.person"))
    found: dict[str, set[str]] = {"prefix": set(), "suffix": set()}
    for part, titles in found.items():
        for attr in (f"{part}es", f"{part}es_male", f"{part}es_female", f"{part}es_nonbinary"):
            titles.update(str(t) for t in getattr(person, attr, ()) or ())
    return sorted(found["prefix"], key=len, reverse=True), sorted(found["suffix"], key=len, reverse=True)


def _strip_titles(name: str, prefixes: list[str], suffixes: list[str]) -> str:
    changed = True
    while changed:
        changed = False
        for t in prefixes:
            if t and name.startswith(t + " "):
                name, changed = name[len(t) + 1 :], True
        for t in suffixes:
            if t and name.endswith(" " + t):
                name, changed = name[: -len(t) - 1], True
    return name


class _LocaleFaker:
    """One locale's Faker, seeded on its own instance (no global random state is touched)."""

    def __init__(self, locale: str, seed: int, spec: FakerSetSpec) -> None:
        from faker import Faker  # the bench extra installs it; imported here so the scorer works without

        self.fake = Faker(locale)
        self.fake.seed_instance(seed)
        self.locale = locale
        self.spec = spec
        self.prefixes, self.suffixes = _titles(self.fake)

    def value(self, providers: tuple[Provider, ...]) -> str:
        provider = self.fake.random_element(providers)
        value = str(getattr(self.fake, provider.method)(**dict(provider.kwargs)))
        return re.sub(r"\s*\n\s*", self.spec.line_join, value.strip())

    def planted(self, entity: str) -> tuple[str, Planted]:
        """(text of the value as written, what is planted: the name without its titles)."""
        while True:
            written = self.value(self.spec.providers(entity, self.locale))
            value = _strip_titles(written, self.prefixes, self.suffixes) if entity == "PERSON" else written
            planted = Planted(entity, value)
            if scorable(planted):  # a value the leak rule cannot see would count as masked
                return written, planted

    def carrier(self) -> str:
        return str(self.fake.random_element(self.spec.carriers[self.spec.locales[self.locale]]))


def generate(per_entity: int = 40, per_negative: int = 15, seed: int = 16) -> list[ExternalSample]:
    """For every locale, ``per_entity`` sentences per entity (one value each) and ``per_negative``
    sentences per negative kind, in a fixed order."""
    spec = load_spec()
    out: list[ExternalSample] = []
    for i, locale in enumerate(spec.locales):
        faker = _LocaleFaker(locale, seed * 1000 + i, spec)
        for entity in spec.entities:
            for _ in range(per_entity):
                written, planted = faker.planted(entity)
                out.append(ExternalSample(SOURCE, locale, faker.carrier().replace("{value}", written), (planted,)))
        for kind, providers in spec.negatives.items():
            for _ in range(per_negative):
                value = faker.value(providers)
                text_ = faker.carrier().replace("{value}", value)
                out.append(ExternalSample(SOURCE, locale, text_, (), (Negative(kind, value),)))
    return out
