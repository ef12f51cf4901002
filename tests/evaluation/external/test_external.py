"""The external evaluation sets: their generators are deterministic per seed and plant values that
are in their sentences, and their scorer counts leaks and altered negatives correctly."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import pytest

from evaluation.external import ExternalSample, Negative, evaluate, is_leaked, read_jsonl, scorable, write_jsonl
from evaluation.pii.corpus import Planted

SAMPLE = Path(str(resources.files("evaluation.external").joinpath("data", "presidio_sample.jsonl")))

needs_faker = pytest.mark.skipif(
    importlib.util.find_spec("faker") is None, reason="faker is not installed (pip install 'sovtel[bench]')"
)
needs_presidio_evaluator = pytest.mark.skipif(
    importlib.util.find_spec("presidio_evaluator") is None,
    reason="presidio-evaluator is not installed: the test extra leaves it out (pip install 'sovtel[bench]')",
)


def _masked(sample: ExternalSample) -> str:
    """The sample's text with every planted value replaced by a token, as a perfect masker would."""
    text = sample.text
    for p in sorted(sample.planted, key=lambda p: len(p.value), reverse=True):
        text = text.replace(p.value, f"<{p.entity}:0a1b2c>")
    return text


class TestFakerSet:
    @needs_faker
    def test_generation_is_deterministic(self) -> None:
        """The same seed gives the same set; another seed another one."""
        from evaluation.external import faker_set

        assert faker_set.generate(2, 1, seed=3) == faker_set.generate(2, 1, seed=3)
        assert faker_set.generate(2, 1, seed=3) != faker_set.generate(2, 1, seed=4)

    @needs_faker
    def test_every_planted_value_is_in_its_sentence(self) -> None:
        """Each planted value and negative appears in its sentence, and every entity, locale and
        negative kind of the data file is represented."""
        from evaluation.external import faker_set

        spec = faker_set.load_spec()
        samples = faker_set.generate(3, 2, seed=5)
        for s in samples:
            assert all(p.value in s.text and scorable(p) for p in s.planted), s
            assert all(n.value in s.text for n in s.negatives), s
        assert {p.entity for s in samples for p in s.planted} == set(spec.entities)
        assert {n.kind for s in samples for n in s.negatives} == set(spec.negatives)
        assert {s.locale for s in samples} == set(spec.locales)

    @needs_faker
    def test_titles_are_not_planted_as_names(self) -> None:
        """A name's academic or courtesy title stays in the text but is not part of the planted name."""
        from evaluation.external import faker_set

        samples = faker_set.generate(30, 0, seed=7)
        titled = [s for s in samples if s.planted[0].entity == "PERSON" and ("Dr." in s.text or "Prof." in s.text)]
        assert titled, "Faker's de_DE names carry titles; expected some"
        for s in titled:
            assert s.planted[0].value in s.text
            assert "Dr." not in s.planted[0].value and "Prof." not in s.planted[0].value, s


class TestPresidioSet:
    @needs_presidio_evaluator
    def test_generation_is_deterministic_and_leaves_random_state_alone(self) -> None:
        """The same seed gives the same sentences, another seed others, and the caller's random
        state is what it was."""
        import random

        from evaluation.external import presidio_set

        random.seed(99)
        expected = random.random()
        random.seed(99)
        first = presidio_set.generate(6, seed=3, locales=("en_US", "de_DE"))
        assert random.random() == expected
        assert first == presidio_set.generate(6, seed=3, locales=("en_US", "de_DE"))
        assert first != presidio_set.generate(6, seed=4, locales=("en_US", "de_DE"))

    @needs_presidio_evaluator
    def test_every_planted_value_is_in_its_sentence(self) -> None:
        """Each planted value is in its sentence and scorable; unscored slots (cities, ages) are not planted."""
        from evaluation.external import presidio_set

        samples = presidio_set.generate(20, seed=11, locales=("en_US", "fr_FR"))
        assert samples
        for s in samples:
            assert s.planted and all(p.value in s.text and scorable(p) for p in s.planted), s
        assert {p.entity for s in samples for p in s.planted} <= set(presidio_set.SCORED.values()) | {"NATIONAL_ID"}

    def test_kept_sample_is_well_formed(self) -> None:
        """The kept seeded sample reads back, and its planted values are in their sentences."""
        samples = read_jsonl(SAMPLE)
        assert len(samples) >= 20
        assert {s.source for s in samples} == {"presidio-evaluator"}
        for s in samples:
            assert s.planted and all(p.value in s.text for p in s.planted), s


class TestScorer:
    def test_unmasked_output_leaks_everything_and_perfect_masking_nothing(self) -> None:
        """On the kept sample, the input itself leaks every planted value; replacing each by a token
        leaks none."""
        samples = read_jsonl(SAMPLE)
        raw = evaluate(samples, [s.text for s in samples])
        assert raw.leaked == raw.planted > 0
        clean = evaluate(samples, [_masked(s) for s in samples])
        assert (clean.planted, clean.leaked) == (raw.planted, 0)

    @pytest.mark.parametrize(
        ("planted", "output", "leaks"),
        [
            (Planted("GIVEN_NAME", "Maria"), "thanks, maria", True),
            (Planted("GIVEN_NAME", "Maria"), "thanks, <PERSON:1a2b3c>", False),
            (Planted("SURNAME", "van der Berg"), "Mr. <PERSON:1a2b3c> Berg", True),
            (Planted("PHONE_NUMBER", "(555) 123-4567"), "call (555) <X>", False),
            (Planted("PHONE_NUMBER", "(555) 123-4567"), "call 5551234567", True),
            (Planted("US_SSN", "078-05-1120"), "ssn <US_SSN:1a2b3c>", False),
        ],
    )
    def test_is_leaked(self, planted: Planted, output: str, leaks: bool) -> None:
        """Given names and surnames alone use the name rule; other values the shared-characters rule."""
        assert is_leaked(planted, output) is leaks

    def test_negatives_altered_are_counted_per_kind(self) -> None:
        """A negative left verbatim is kept; one partly replaced counts as altered, under its kind."""
        sample = ExternalSample("faker", "en_US", "See 1.2.3 and abc.txt.", (), (Negative("version", "1.2.3"),))
        other = ExternalSample("faker", "en_US", "See abc.txt.", (), (Negative("file name", "abc.txt"),))
        ev = evaluate([sample, other], ["See 1.2.3 and abc.txt.", "See <PERSON:1a2b3c>.txt."])
        assert (ev.negatives["version"].leaked, ev.negatives["file name"].leaked) == (0, 1)
        assert ev.negatives_total == 2 and ev.false_positive_rate == 0.5

    def test_jsonl_round_trip(self, tmp_path: Path) -> None:
        """Samples written as JSON lines read back equal."""
        samples = [
            ExternalSample("faker", "pl_PL", "Zobacz Łukasz.", (Planted("GIVEN_NAME", "Łukasz"),)),
            ExternalSample("faker", "en_US", "See v1.", (), (Negative("version", "v1"),)),
        ]
        write_jsonl(samples, tmp_path / "s.jsonl")
        assert read_jsonl(tmp_path / "s.jsonl") == samples

    def test_scorable_refuses_values_the_rule_cannot_see(self) -> None:
        """A value without a letter or digit is in every output, so it is never planted."""
        assert not scorable(Planted("STREET_ADDRESS", " , "))
        assert scorable(Planted("GIVEN_NAME", "Ana"))
