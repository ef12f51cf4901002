"""Property test: spans with personal data planted in any attribute, message or identifier come
out of minimise(keep_content) → pii → pseudonymise with nothing planted left."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation import pii as corpus
from processors import pii, pseudonymise
from processors.keyring import rotate
from processors.minimise import Config as MinimiseConfig
from processors.minimise import create as create_minimise
from sovtel.component import ComponentContext
from sovtel.config import resolve_secret
from sovtel.records import SPAN_CONTENT_COLUMNS, Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry


def international_phone(r: random.Random) -> str:
    """A phone number with its country code (national forms need a context word, see the corpus)."""
    while True:
        text, international = corpus.phone(r, r.choice(corpus.LANGUAGES))
        if international:
            return text


# Values whose detection needs no context word. Names (NER), national phone formats and bare BSNs
# depend on context and are measured on the labelled corpus instead.
PLANTERS = {
    "EMAIL_ADDRESS": lambda r: corpus.email(r, r.choice(corpus.LANGUAGES)),
    "PHONE_NUMBER": international_phone,
    "IBAN_CODE": lambda r: corpus.iban(r, r.choice(corpus.LANGUAGES)),
    "CREDIT_CARD": corpus.card,
    "API_KEY": corpus.api_key,
    "JWT": corpus.jwt,
    "IP_ADDRESS": corpus.ip,
    "IT_FISCAL_CODE": corpus.it_fiscal_code,
    "ES_NIF": corpus.es_nif,
    "FR_NIR": corpus.fr_nir,
    "PL_PESEL": corpus.pl_pesel,
    "EU_VAT": lambda r: corpus.vat(r, r.choice(corpus.LANGUAGES)),
}
# Context the value sits in (national formats and phone numbers in national form need a word).
LEADS = ("", "contact ", "mail: ", "Nummer ", "phone ", "id=", "\n", "(", '"')
WORDS = ("please", "check", "the", "invoice", "für", "l'utente", "gracias", "llama-3.1-8b-instruct", "GPU", "—")

ATTRIBUTE_PLACES = ("span_attributes", "resource_attributes", "event_attributes")
TEXT_PLACES = (*SPAN_CONTENT_COLUMNS, "status_message")


@st.composite
def planted_span(draw: st.DrawFn) -> tuple[dict[str, list[object]], list[str]]:
    seed = draw(st.integers(0, 2**32 - 1))
    r = random.Random(seed)
    entity = draw(st.sampled_from(sorted(PLANTERS)))
    value = PLANTERS[entity](r)
    lead = draw(st.sampled_from(LEADS))
    filler = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
    tail = draw(st.sampled_from(("", ".", ",", ")", '"', " ok")))
    text = f"{filler} {lead}{value}{tail}".strip()
    place = draw(st.sampled_from((*TEXT_PLACES, *ATTRIBUTE_PLACES, "user_id")))
    columns: dict[str, list[object]] = {"trace_id": ["t"]}
    # Keys minimise keeps by default, so masking (not minimisation) has to catch the value.
    key = {
        "span_attributes": "gen_ai.response.id",
        "resource_attributes": "host.name",
        "event_attributes": "exception.type",
    }
    if place in TEXT_PLACES:
        as_json = draw(st.booleans()) and place != "status_message"
        columns[place] = [corpus.as_messages(corpus.Sample("prompt", "en", text, (), ())) if as_json else text]
    elif place == "user_id":
        columns["user_id"] = [value]
    elif place == "event_attributes":
        columns[place] = [[[(key[place], text)]]]
    else:
        columns[place] = [[(key[place], text)]]
    return columns, [value]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, masker: pii.Masker):  # type: ignore[no-untyped-def]
    ring = Path(tmp_path_factory.mktemp("keys")) / "ring.yaml"
    rotate(ring, "node")
    tel = Telemetry()

    def c(name: str) -> ComponentContext:
        return ComponentContext(name=name, telemetry=tel.component(name), resolve_secret=resolve_secret)

    steps = [
        create_minimise(c("minimise"), MinimiseConfig(keep_content=True)),
        pii.PiiMasking(c("pii"), pii.Config(), masker=masker),
        pseudonymise.create(c("pseudonymise"), pseudonymise.Config(key_ring=ring)),
    ]

    def run(batch: Batch) -> Batch:
        for step in steps:
            batch = step(batch)
        return batch

    return run


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(planted_span())
def test_nothing_planted_reaches_the_output(chain, case) -> None:  # type: ignore[no-untyped-def]
    """Whatever attribute, message or identifier holds planted PII, the processed span holds none of it."""
    columns, values = case
    batch = Batch(Signal.TRACES, table_from_columns(Signal.TRACES, columns))
    out = chain(batch)
    assert out.rows == 1
    dumped = json.dumps(out.table.to_pylist(), default=str, ensure_ascii=False)
    seen = corpus.visible_text(dumped) + "\n" + "\n".join(corpus.visible_strings(out.table.to_pylist()[0]))
    for value in values:
        assert value not in seen
        assert not corpus.leaked(corpus.Planted("X", value), seen)
