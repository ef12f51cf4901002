"""The vocabulary of the PII corpus, read from the data files beside this module: names, mail domains,
countries and national ids per language, telemetry look-alikes, and the text templates."""

from __future__ import annotations

from dataclasses import dataclass

from evaluation.datafiles import DataFileError, load, mapping, per_language, text, texts

_PACKAGE = "evaluation.pii"


@dataclass(frozen=True)
class Names:
    """The names of one language; the rare ones lie outside the PERSON gazetteers."""

    given: tuple[str, ...]
    given_rare: tuple[str, ...]
    surnames: tuple[str, ...]
    surnames_rare: tuple[str, ...]


@dataclass(frozen=True)
class NationalId:
    """A national id people write in a language: its entity, their label for it, a tool's JSON key for
    it, and the name of the generator of valid values."""

    entity: str
    label: str
    key: str
    generator: str


@dataclass(frozen=True)
class Locale:
    """Where the people of one language have their mail, phones, accounts and ids."""

    mail_domains: tuple[str, ...]
    phone_region: str
    iban_country: str
    vat_country: str
    national_ids: tuple[NationalId, ...]


@dataclass(frozen=True)
class Templates:
    """One template family: the tuning (``dev``) and the holdout templates."""

    dev: tuple[str, ...]
    holdout: tuple[str, ...]


def _locale(value: object, where: str) -> Locale:
    m = mapping(value, where)
    ids = m.get("national_ids")
    if not isinstance(ids, list) or not ids:
        raise DataFileError(f"{where}.national_ids: expected a non-empty list")
    national_ids = []
    for i, entry in enumerate(ids):
        e = mapping(entry, f"{where}.national_ids[{i}]")
        fields = ("entity", "label", "key", "generator")
        national_ids.append(NationalId(*(text(e.get(f), f"{where}.national_ids[{i}].{f}") for f in fields)))
    return Locale(
        mail_domains=texts(m.get("mail_domains"), f"{where}.mail_domains"),
        phone_region=text(m.get("phone_region"), f"{where}.phone_region"),
        iban_country=text(m.get("iban_country"), f"{where}.iban_country"),
        vat_country=text(m.get("vat_country"), f"{where}.vat_country"),
        national_ids=tuple(national_ids),
    )


def _names(value: object, where: str) -> Names:
    m = mapping(value, where)
    fields = ("given", "given_rare", "surnames", "surnames_rare")
    return Names(*(texts(m.get(f), f"{where}.{f}") for f in fields))


def _templates(value: object, where: str) -> Templates:
    m = mapping(value, where)
    return Templates(texts(m.get("dev"), f"{where}.dev"), texts(m.get("holdout"), f"{where}.holdout"))


_locales = load(_PACKAGE, "locales.yaml")
# The order of the languages in locales.yaml is the order the generator draws from.
LANGUAGES: tuple[str, ...] = tuple(_locales)
LOCALES: dict[str, Locale] = {lang: _locale(_locales[lang], f"locales.yaml:{lang}") for lang in LANGUAGES}

_names_file = load(_PACKAGE, "names.yaml")
NAMES: dict[str, Names] = {lang: _names(_names_file.get(lang), f"names.yaml:{lang}") for lang in LANGUAGES}

_telemetry = load(_PACKAGE, "telemetry.yaml")
MODELS = texts(_telemetry.get("models"), "telemetry.yaml:models")
GPUS = texts(_telemetry.get("gpus"), "telemetry.yaml:gpus")
ERRORS = texts(_telemetry.get("errors"), "telemetry.yaml:errors")
VERSIONS = texts(_telemetry.get("versions"), "telemetry.yaml:versions")
NAMESPACES = texts(_telemetry.get("namespaces"), "telemetry.yaml:namespaces")
POD_BASES = texts(_telemetry.get("pod_bases"), "telemetry.yaml:pod_bases")

_prompts = load(_PACKAGE, "prompts.yaml")
PROMPTS: dict[str, tuple[str, ...]] = per_language(_prompts.get("dev"), LANGUAGES, "prompts.yaml:dev")
HOLDOUT_PROMPTS: dict[str, tuple[str, ...]] = per_language(_prompts.get("holdout"), LANGUAGES, "prompts.yaml:holdout")

_templates_file = load(_PACKAGE, "templates.yaml")
TOOL_ARGS = _templates(_templates_file.get("tool_args"), "templates.yaml:tool_args")
LOGS = _templates(_templates_file.get("logs"), "templates.yaml:logs")
SYSTEM = texts(_templates_file.get("system"), "templates.yaml:system")
_slot_values = mapping(_templates_file.get("slot_values"), "templates.yaml:slot_values")
COMPANIES = texts(_slot_values.get("company"), "templates.yaml:slot_values.company")
PASSWORDS = texts(_slot_values.get("password"), "templates.yaml:slot_values.password")
