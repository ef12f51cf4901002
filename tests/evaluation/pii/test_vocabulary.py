"""Tests for the PII corpus vocabulary as loaded from the data files."""

from __future__ import annotations

import string

from evaluation.pii.values import NATIONAL_ID_GENERATORS, NEGATIVES
from evaluation.pii.vocabulary import HOLDOUT_PROMPTS, LANGUAGES, LOCALES, LOGS, NAMES, PROMPTS, SYSTEM, TOOL_ARGS

# The slots the corpus fills with planted values (negatives are the keys of NEGATIVES).
PLANTED_SLOTS = {
    "name", "given", "email", "phone", "phone_nat", "natid", "natid_label", "natid_key", "country", "company",
    "iban", "card", "vat", "apikey", "jwt", "ip", "bearer", "session", "privkey", "password",
}  # fmt: skip


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_template_slot_is_filled_by_the_generator() -> None:
    """No template names a slot the corpus generator does not know."""
    templates = [
        *(t for table in (PROMPTS, HOLDOUT_PROMPTS) for group in table.values() for t in group),
        *TOOL_ARGS.dev,
        *TOOL_ARGS.holdout,
        *LOGS.dev,
        *LOGS.holdout,
        *SYSTEM,
    ]
    known = PLANTED_SLOTS | set(NEGATIVES)
    for template in templates:
        assert _fields(template) <= known, template


def test_every_language_has_names_and_locale() -> None:
    """Each language has common and rare names, and national ids with a known generator."""
    assert LANGUAGES == ("de", "fr", "it", "es", "nl", "pl", "en")
    for lang in LANGUAGES:
        names = NAMES[lang]
        assert names.given and names.given_rare and names.surnames and names.surnames_rare
        assert not set(names.given) & set(names.given_rare)
        assert all(i.generator in NATIONAL_ID_GENERATORS for i in LOCALES[lang].national_ids)
