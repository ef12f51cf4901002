"""Tests for the built-in groundedness scorer, the refusal scorer and the scorer registry."""

from __future__ import annotations

import importlib
import statistics
from collections.abc import Sequence

import numpy as np
import pytest

from bench.quality import groundedness_scores
from evaluation.hallucination.evalset import generate, split
from evaluation.hallucination.score import THRESHOLDS, calibrate, prf
from processors.scorers import ScorerError, ScoreResult, ScoringItem, available, create_scorer, register_scorer
from processors.scorers.groundedness import DEFAULT_THRESHOLD, GroundednessScorer
from processors.scorers.refusal import RefusalScorer, is_filler, is_refusal
from processors.scorers.text import document_texts

EVIDENCE = (
    "The Berlin branch opens at 9:00 and closes at 17:00 from Monday to Friday. "
    "The Paris branch opens at 10:00 and closes at 18:00 from Monday to Friday. "
    "SEPA transfers within the EU are free of charge.",
)


def judge(answer: str, evidence: tuple[str, ...] = EVIDENCE, question: str = "When does it open?") -> ScoreResult:
    return GroundednessScorer().score_one(ScoringItem(answer=answer, question=question, evidence=evidence))


class TestGroundedness:
    @pytest.mark.parametrize(
        ("answer", "hallucinated", "reason"),
        [
            ("The Berlin branch opens at 9:00 and closes at 17:00 on weekdays.", 0, None),
            ("In Berlin you can visit the branch from 9 am until 17:00, Monday through Friday.", 0, None),
            ("Sure! The Paris branch opens at 10:00. Hope this helps!", 0, None),
            ("The Berlin branch opens at 8:00.", 1, "unsupported_number"),
            ("The Madrid branch opens at 9:00.", 1, "unsupported_entity"),
            ("The Paris branch opens at 9:00 and closes at 17:00.", 1, "unbound_facts"),
            ("SEPA transfers within the EU are not free of charge.", 1, "contradiction"),
            ("The Berlin branch opens at 9:00. Customers also get free parking behind the building.", 1, None),
        ],
    )
    def test_decisions(self, answer: str, hallucinated: int, reason: str | None) -> None:
        """Faithful copies and paraphrases pass; wrong numbers, foreign entities, swapped bindings,
        contradictions and unsupported additions are hallucinations, with the reason as a label."""
        res = judge(answer)
        assert res.scores["hallucination"] == hallucinated
        assert 0.0 <= res.scores["groundedness"] <= 1.0
        if reason is not None:
            assert res.labels["hallucination.reason"] == reason
        if not hallucinated:
            assert "hallucination.reason" not in res.labels

    def test_tool_result_evidence(self) -> None:
        """Numbers and names in a JSON tool result support an answer that formats them differently."""
        tool = ('{"accounts": [{"account_suffix": "4821", "balance": 1234.56, "currency": "EUR"}, '
                '{"account_suffix": "9044", "balance": 87.2, "currency": "EUR"}]}',)
        evidence = tuple(document_texts(tool[0]))
        assert judge("Account 4821 holds 1,234.56 EUR.", evidence).scores["hallucination"] == 0
        assert judge("Account 9044 holds 1,234.56 EUR.", evidence).scores["hallucination"] == 1

    @pytest.mark.parametrize(
        ("answer", "evidence", "label"),
        [
            ("Paris is lovely.", (), "no_evidence"),
            ("Paris is lovely.", ("You are a helpful assistant.",), "no_evidence"),
            ("   ", EVIDENCE, "not_applicable"),
        ],
    )
    def test_nothing_to_check(self, answer: str, evidence: tuple[str, ...], label: str) -> None:
        """Without evidence (or without an answer) there is no score, only a label saying why."""
        res = judge(answer, evidence)
        assert res.scores == {}
        assert res.labels["groundedness"] == label

    def test_refusal_is_not_a_hallucination(self) -> None:
        """A refusal makes no claim: decision 0, no groundedness score, label 'refusal'."""
        res = judge("I'm sorry, but the provided documents do not mention parking.")
        assert res.scores == {"hallucination": 0.0}
        assert res.labels["groundedness"] == "refusal"

    def test_pasted_passage_counts_as_evidence(self) -> None:
        """A multi-statement passage in the user turn is evidence; a lone question is not."""
        passage = "Read this: The Lyon office opens at 8:00. It closes at 16:00.\n\nQuestion: When does it open?"
        scorer = GroundednessScorer()
        assert scorer.score_one(ScoringItem("The Lyon office opens at 7:00.", passage)).scores["hallucination"] == 1
        long_q = "Could you tell me, in detail and with examples, when the office in Lyon opens on weekdays?"
        assert scorer.score_one(ScoringItem("It opens at 7:00.", long_q)).labels["groundedness"] == "no_evidence"

    def test_labels_never_carry_content(self) -> None:
        """Labels are enumerations: no word of the answer or evidence ends up in them."""
        res = judge("The Zürich branch opens at 6:00 and serves Kowalski personally.")
        allowed = {"grounded", "ungrounded", "no_evidence", "refusal", "not_applicable",
                   "unsupported_number", "unsupported_entity", "contradiction", "unbound_facts", "low_overlap"}
        assert set(res.labels.values()) <= allowed

    def test_default_threshold_is_on_the_calibrated_plateau(self) -> None:
        """The shipped threshold scores within 0.01 F1 of the best threshold on the evaluation set's dev split."""
        dev = split(generate(), "dev")
        scores = groundedness_scores(dev)
        labels = [it.label for it in dev]
        _, best = calibrate(labels, scores)
        shipped = prf(labels, [s < DEFAULT_THRESHOLD for s in scores])["f1"]
        assert shipped >= best - 0.01
        assert min(THRESHOLDS) <= DEFAULT_THRESHOLD <= max(THRESHOLDS)

    def test_options_are_validated(self) -> None:
        """Unknown or out-of-range options fail when the scorer is built, not when it scores."""
        with pytest.raises(ValueError):
            create_scorer("groundedness", {"threshhold": 0.5})
        with pytest.raises(ValueError):
            create_scorer("groundedness", {"threshold": 1.5})


class TestRefusal:
    @pytest.mark.parametrize(
        ("sentence", "refusal"),
        [
            ("I'm sorry, but I can't help with that.", True),
            ("The provided documents do not mention the fee.", True),
            ("I could not find this information.", True),
            ("That is not specified in the provided sources.", True),
            ("As an AI, I cannot give legal advice.", True),
            ("The branch does not open on Sundays.", False),
            ("There is no fee for SEPA transfers.", False),
        ],
    )
    def test_refusal_sentences(self, sentence: str, refusal: bool) -> None:
        """Declining or saying the sources lack the answer is a refusal; a negative fact is not."""
        assert is_refusal(sentence) is refusal

    @pytest.mark.parametrize(("sentence", "filler"), [("Hope this helps!", True),
                                                      ("Let me know if you need more.", True),
                                                      ("Please contact support.", True), ("It opens at 9.", False)])
    def test_filler_sentences(self, sentence: str, filler: bool) -> None:
        """Courtesy sentences are recognised so they count neither for nor against grounding."""
        assert is_filler(sentence) is filler

    @pytest.mark.parametrize(
        ("answer", "tool_call", "scores", "label"),
        [
            ("", False, {"empty": 1.0}, "empty"),
            (" ... ", False, {"empty": 1.0}, "empty"),
            ("", True, {"empty": 0.0}, "tool_call"),
            ("I don't know.", False, {"empty": 0.0, "refusal": 1.0}, "refusal"),
            ("I don't know the fee. The branch opens at 9.", False, {"empty": 0.0, "refusal": 0.0}, "partial_refusal"),
            ("The branch opens at 9.", False, {"empty": 0.0, "refusal": 0.0}, "answer"),
        ],
    )
    def test_scores(self, answer: str, tool_call: bool, scores: dict[str, float], label: str) -> None:
        """Empty answers, tool calls, full and partial refusals and plain answers are told apart."""
        res = RefusalScorer().score([ScoringItem(answer=answer, tool_call=tool_call)])[0]
        assert res.scores == scores
        assert res.labels["answer"] == label


class _Constant:
    name = "constant"

    def score(self, items: Sequence[ScoringItem]) -> list[ScoreResult]:
        return [ScoreResult({"constant": 0.5}, {}) for _ in items]


class TestRegistry:
    def test_builtins_are_registered(self) -> None:
        """The two built-in scorers are available by name."""
        assert {"groundedness", "refusal"} <= set(available())

    @pytest.mark.parametrize("name", ["groundedness", "Bad Name", "", "x" * 80])
    def test_bad_or_duplicate_names_fail_at_registration(self, name: str) -> None:
        """Registering a taken or malformed name raises at once."""
        with pytest.raises(ScorerError):
            register_scorer(name, lambda _o: _Constant())

    def test_unknown_scorer(self) -> None:
        """Creating an unregistered scorer names the registered ones."""
        with pytest.raises(ScorerError, match="registered"):
            create_scorer("no-such-scorer")

    def test_plugin_scorer_registers_and_scores(self) -> None:
        """Importing a plugin module registers its scorer, which is then creatable by name."""
        plugin = importlib.import_module("tests.processors.scorers.constant_plugin")
        scorer = create_scorer(plugin.NAME)
        assert scorer.score([ScoringItem("x")])[0].scores == {"constant": 0.5}

    def test_factory_must_return_a_scorer(self) -> None:
        """A factory returning something without ``score`` is refused when created."""
        register_scorer("test-broken", lambda _o: object())  # type: ignore[arg-type,return-value]
        with pytest.raises(ScorerError):
            create_scorer("test-broken")


def test_scores_are_deterministic() -> None:
    """The same item always gets the same score (no randomness, no state between calls)."""
    item = ScoringItem("The Berlin branch opens at 9:00.", "When?", evidence=EVIDENCE)
    scorer = GroundednessScorer()
    values = [scorer.score([item])[0].scores["groundedness"] for _ in range(3)]
    assert statistics.pstdev(values) == 0.0 and np.isfinite(values[0])
