"""Acceptance on the labelled corpus: ≤1% of planted values leak and ≤5% of negatives change; and
the evaluation itself counts leaks and alterations correctly."""

from __future__ import annotations

import json

import pytest

from evaluation import pii as corpus
from processors import pii
from processors.recognizers import checksums as cs
from processors.recognizers.person_name import given_names, surnames

GAZETTEER = frozenset(given_names()) | frozenset(surnames())


@pytest.fixture(scope="module")
def result(masker: pii.Masker) -> tuple[list[corpus.Sample], corpus.Evaluation]:
    """The masked corpus, scored."""
    # A seed other than the benchmark's, so the test sees values the rules were not tuned on.
    samples = corpus.generate(1200, seed=2024)
    outputs = [m.text for m in masker.mask_values([s.text for s in samples])]
    return samples, corpus.evaluate(samples, outputs, GAZETTEER)


class TestAcceptance:
    def test_leak_rate_at_most_one_percent(self, result: tuple[list[corpus.Sample], corpus.Evaluation]) -> None:
        """At most 1% of planted values survive masking."""
        _, ev = result
        assert ev.planted > 1000
        assert ev.leak_rate <= 0.01, ev.leaked_examples

    def test_negatives_altered_at_most_five_percent(
        self, result: tuple[list[corpus.Sample], corpus.Evaluation]
    ) -> None:
        """At most 5% of telemetry look-alikes are changed."""
        _, ev = result
        assert ev.negatives_total > 500
        assert ev.false_positive_rate <= 0.05, ev.altered_examples

    def test_every_entity_type_is_planted_and_json_stays_valid(
        self, result: tuple[list[corpus.Sample], corpus.Evaluation]
    ) -> None:
        """The corpus covers every entity type, and masked tool arguments remain valid JSON."""
        samples, ev = result
        assert {
            "PERSON",
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "IBAN_CODE",
            "CREDIT_CARD",
            "API_KEY",
            "JWT",
            "IP_ADDRESS",
            "DE_TAX_ID",
            "FR_NIR",
            "IT_FISCAL_CODE",
            "ES_NIF",
            "NL_BSN",
            "PL_PESEL",
        } <= set(ev.entities)
        assert {s.lang for s in samples} == set(corpus.LANGUAGES)
        assert ev.invalid_json == 0


class TestCorpus:
    def test_generation_is_deterministic(self) -> None:
        """The same seed gives the same corpus; another seed another one."""
        assert corpus.generate(50, 3) == corpus.generate(50, 3)
        assert corpus.generate(50, 3) != corpus.generate(50, 4)

    def test_tool_arguments_are_valid_json(self) -> None:
        """Generated tool-call arguments parse as JSON and contain their planted values."""
        for s in corpus.generate(300, 5):
            if s.kind == "tool_args":
                text = corpus.visible_text(s.text)
                json.loads(s.text)
                assert all(p.value in text for p in s.planted)

    def test_planted_values_pass_their_checksums(self) -> None:
        """Planted identifiers are valid, so a recognizer cannot pass by rejecting them."""
        checks = {
            "IBAN_CODE": lambda v: cs.iban_valid_prefix(cs.alnum_upper(v)) is not None,
            "CREDIT_CARD": lambda v: cs.luhn_valid(cs.digits_only(v)),
            "NL_BSN": cs.nl_bsn_valid,
            "PL_PESEL": cs.pl_pesel_valid,
            "DE_TAX_ID": lambda v: cs.de_tax_id_valid(cs.digits_only(v)),
            "FR_NIR": lambda v: cs.fr_nir_valid(cs.alnum_upper(v)),
            "IT_FISCAL_CODE": cs.it_fiscal_code_valid,
            "ES_NIF": lambda v: cs.es_nif_valid(cs.alnum_upper(v)),
            "DE_ID_CARD": cs.de_id_card_valid,
        }
        seen = set()
        for s in corpus.generate(600, 9):
            for p in s.planted:
                if p.entity in checks:
                    seen.add(p.entity)
                    assert checks[p.entity](p.value), p
        assert seen == set(checks)


class TestLeakCheck:
    @pytest.mark.parametrize(
        ("entity", "value", "output", "leaks"),
        [
            ("IBAN_CODE", "DE89 3704 0044 0532 0130 00", "pay <IBAN_CODE:abc123>", False),
            ("IBAN_CODE", "DE89 3704 0044 0532 0130 00", "pay DE89 3704 <X> 0532 0130 00", True),
            ("IBAN_CODE", "DE89370400440532013000", '{"iban": "DE89370400440532013000"}', True),
            ("PERSON", "Jan van der Berg", "hi <PERSON:1> van der Berg", True),
            ("PERSON", "Jan van der Berg", "hi <PERSON:1>", False),
            ("PERSON", "Małgorzata Nowak", '{"n": "Ma\\u0142gorzata"}', True),
            ("EMAIL_ADDRESS", "anna.rossi@libero.it", "<PERSON:1> anna.rossi@<X>", True),
            ("EMAIL_ADDRESS", "anna.rossi@libero.it", "write to <EMAIL_ADDRESS:1>", False),
        ],
    )
    def test_leaked(self, entity: str, value: str, output: str, leaks: bool) -> None:
        """Verbatim, partial, JSON-escaped and name-part leaks count; masked values do not."""
        assert corpus.leaked(corpus.Planted(entity, value), output) is leaks

    def test_evaluate_counts_leaks_and_alterations(self) -> None:
        """Unmasked output leaks everything; an output without the negative counts as altered."""
        sample = corpus.Sample(
            "prompt", "en", "mail a@b.eu on vllm-x", (corpus.Planted("EMAIL_ADDRESS", "a@b.eu"),), ("vllm-x",)
        )
        ev = corpus.evaluate([sample], [sample.text])
        assert (ev.leaked, ev.negatives_altered) == (1, 0)
        ev = corpus.evaluate([sample], ["mail <EMAIL_ADDRESS:1> on <X>"])
        assert (ev.leaked, ev.negatives_altered) == (0, 1)
