"""The presidio-evaluator set: sentences from the Presidio team's public templates
(``presidio-evaluator`` 0.3.2, its ``templates.txt``), filled by its own ``PresidioSentenceFaker``
with its global person records (FakeNameGenerator), its US and international phone and address
formats, and Faker for the rest, in several Faker locales. Deterministic for a seed, except the
dates Faker draws up to today, which only fill slots that are not scored.

Scored entities are the personal identifiers: full names, given names and surnames alone, street
addresses, phone numbers, card numbers, IBANs, US SSNs and other national ids, e-mail and IP
addresses and US driver's licences. The template's other slots — cities, states, countries,
postcodes and building numbers alone, organisations, job titles, nationalities, ages, dates and
web sites — stay in the text but are not scored: alone they do not point to a person.

Requires ``presidio-evaluator`` (the ``bench`` extra). ``python -m evaluation.external.presidio_set
OUT.jsonl`` writes a small seeded sample.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evaluation.external.samples import ExternalSample, write_jsonl
from evaluation.external.score import scorable
from evaluation.pii.corpus import Planted

SOURCE = "presidio-evaluator"
# en_US for the US formats; the others change the values Faker makes (names beyond the record's,
# IBANs, national ids, e-mail domains); the templates stay English, as published.
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL")
# The US locale is the generator's own default and the only one whose ``ssn`` is a US SSN: it gets
# this many times the sentences of each other locale.
US_SHARE = 3
# presidio-evaluator's default share of sentences written all in lower case.
LOWER_CASE_RATIO = 0.05

# Template slot -> the entity we score it as (slots absent here are not scored).
SCORED: dict[str, str] = {
    "person": "PERSON",
    "name": "PERSON",
    "name_female": "PERSON",
    "name_male": "PERSON",
    "first_name": "GIVEN_NAME",
    "first_name_male": "GIVEN_NAME",
    "first_name_female": "GIVEN_NAME",
    "first_name_nonbinary": "GIVEN_NAME",
    "last_name": "SURNAME",
    "last_name_male": "SURNAME",
    "last_name_female": "SURNAME",
    "address": "STREET_ADDRESS",
    "street_name": "STREET_ADDRESS",
    "phone_number": "PHONE_NUMBER",
    "credit_card_number": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "US_SSN",
    "email": "EMAIL_ADDRESS",
    "ip_address": "IP_ADDRESS",
    "us_driver_license": "US_DRIVER_LICENSE",
}
_UNSCORED_PREFIX = "unscored:"


class PresidioEvaluatorMissing(ImportError):
    """presidio-evaluator is not installed (it comes with the ``bench`` extra)."""


def _entity_mapping(locale: str) -> dict[str, str]:
    """Slot -> label for the generator: scored slots by entity, the rest marked unscored."""
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    mapping = {slot: _UNSCORED_PREFIX + slot for slot in PresidioSentenceFaker.ENTITY_TYPE_MAPPING}
    mapping.update(SCORED)
    if locale != "en_US":
        # Faker's ssn in another locale is that country's id (NIR, codice fiscale, PESEL, BSN, …).
        mapping["ssn"] = "NATIONAL_ID"
    return mapping


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the random state presidio-evaluator draws from (Python's, NumPy's and Faker's shared
    one), and put it back afterwards so the caller's randomness is not disturbed."""
    import numpy as np
    from faker.generator import random as faker_random

    saved = (random.getstate(), np.random.get_state(), faker_random.getstate())
    try:
        random.seed(seed)
        np.random.seed(seed)
        faker_random.seed(seed)
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        faker_random.setstate(saved[2])


def _sentences(locale: str, n: int, seed: int) -> list[Any]:
    try:
        from presidio_evaluator.data_generator import PresidioSentenceFaker, presidio_additional_entity_providers
        from presidio_evaluator.data_generator.faker_extensions import HospitalProvider
        from presidio_evaluator.data_generator.faker_extensions.datasets import load_fake_person_df
    except ImportError as exc:
        raise PresidioEvaluatorMissing(
            "the presidio-evaluator set needs presidio-evaluator==0.3.2: pip install 'sovtel[bench]'"
        ) from exc
    # Its hospital provider downloads names from Wikidata on creation; no template uses it.
    providers = [p for p in presidio_additional_entity_providers if p is not HospitalProvider]
    with _seeded(seed), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # The person records draw middle initials from Python's random state: load them seeded.
        faker = PresidioSentenceFaker(
            locale=locale,
            lower_case_ratio=LOWER_CASE_RATIO,
            entity_providers=providers,
            base_records=load_fake_person_df(),
            entity_type_mapping=_entity_mapping(locale),
            provider_aliases=list(PresidioSentenceFaker.PROVIDER_ALIASES),
            random_seed=seed,
        )
        return list(faker.generate_new_fake_sentences(n))


def _sample(locale: str, sentence: Any) -> ExternalSample:
    text: str = sentence.full_text
    planted = []
    for span in sorted(sentence.spans, key=lambda s: s.start_position):
        if span.entity_type.startswith(_UNSCORED_PREFIX):
            continue
        value = text[span.start_position : span.end_position]
        p = Planted(span.entity_type, value)
        if scorable(p):
            planted.append(p)
    return ExternalSample(SOURCE, locale, text, tuple(planted))


def generate(per_locale: int = 250, seed: int = 16, locales: Sequence[str] = LOCALES) -> list[ExternalSample]:
    """``per_locale`` sentences for each locale (``US_SHARE`` times as many for en_US; the seed of
    locale i is ``seed * 1000 + i``); sentences with nothing to score (their templates plant only
    unscored slots) are left out."""
    out: list[ExternalSample] = []
    for i, locale in enumerate(locales):
        n = per_locale * (US_SHARE if locale == "en_US" else 1)
        for sentence in _sentences(locale, n, seed * 1000 + i):
            sample = _sample(locale, sentence)
            if sample.planted:
                out.append(sample)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write a seeded sample of the set as JSON lines."""
    ap = argparse.ArgumentParser(prog="python -m evaluation.external.presidio_set")
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-locale", type=int, default=8)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    samples = generate(args.per_locale, args.seed)
    write_jsonl(samples, args.out)
    print(f"wrote {len(samples)} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
