"""Tests for processors.scorers.text: numbers, sentences, stems and GenAI message parsing."""

from __future__ import annotations

import json

import pytest

from processors.scorers.text import (
    analyse,
    canonical,
    document_texts,
    normalise_number,
    parse_input,
    parse_output,
    sentences,
)


class TestNumbers:
    @pytest.mark.parametrize(
        ("token", "expected"),
        [
            ("1,234.50", ["1234.5"]),
            ("09:00", ["9"]),
            ("10:30", ["10:30", "10"]),
            ("2026-11-14", ["2026", "11", "14"]),
            ("50%", ["50"]),
            ("3rd", ["3"]),
            ("6,50", ["6.5"]),
            ("7am", ["7"]),
        ],
    )
    def test_normalises_formats(self, token: str, expected: list[str]) -> None:
        """Thousands separators, times, dates, ordinals, percent and decimal commas reduce to canonical forms."""
        assert normalise_number(token) == expected

    @pytest.mark.parametrize(
        ("text", "numbers"),
        [
            ("three times a day", {"3"}),
            ("on 14 November", {"14", "11"}),
            ("you may take it", set()),
            ("opens in May", {"5"}),
        ],
    )
    def test_number_words_and_months(self, text: str, numbers: set[str]) -> None:
        """Number words and capitalised months count as numbers; the modal verb 'may' does not."""
        assert analyse(text).numbers == frozenset(numbers)


class TestSentences:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("See Dr. Rossi at 9. Bring the letter.", ["See Dr. Rossi at 9.", "Bring the letter."]),
            ("Rules:\n- one thing\n- another", ["Rules:", "one thing", "another"]),
            ("It costs 3.5 EUR. Done!", ["It costs 3.5 EUR.", "Done!"]),
            ("no capital after the dot. so one sentence", ["no capital after the dot. so one sentence"]),
            ("", []),
        ],
    )
    def test_splits_claims(self, text: str, expected: list[str]) -> None:
        """Sentences split at end marks before a capital, at line breaks and bullets, never after 'Dr.'."""
        assert sentences(text) == expected


class TestAnalysis:
    def test_entities_are_capitalised_words_after_the_first(self) -> None:
        """Proper nouns, acronyms and id-like tokens are entities; the sentence's first word is not."""
        a = analyse("Flights leave Berlin from gate B12 with DHL.")
        assert {"berlin", "b12", "dhl"} <= a.entities
        assert "flight" not in a.entities

    @pytest.mark.parametrize(("text", "negated"), [("It is not free.", True), ("It doesn't open.", True),
                                                   ("It is free.", False)])
    def test_negation(self, text: str, negated: bool) -> None:
        """Negation words, including contractions, mark a text as negated."""
        assert analyse(text).negated is negated

    @pytest.mark.parametrize(("a", "b"), [("purchased", "buying"), ("discharged", "discharges"),
                                          ("clients", "customer")])
    def test_stems_and_synonyms_meet(self, a: str, b: str) -> None:
        """Inflections share a stem and generic synonyms share a canonical stem."""
        assert canonical(a) == canonical(b)


class TestMessages:
    def test_otel_input_messages_split_by_role(self) -> None:
        """System and tool parts are context, the last user turn is the question, earlier turns are history."""
        raw = json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Context: fees are 5 EUR."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "fees", "arguments": {}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"fee_eur": 5}}]},
            {"role": "user", "parts": [{"type": "text", "content": "What is the fee?"}]},
        ])
        conv = parse_input(raw)
        assert conv.question == "What is the fee?"
        assert conv.history == ("Hi",)
        assert conv.context[0] == "Context: fees are 5 EUR."
        assert "5" in conv.context[1] and "fee eur" in conv.context[1]

    @pytest.mark.parametrize(
        ("raw", "question"),
        [
            ("plain prompt text", "plain prompt text"),
            (json.dumps([{"role": "user", "content": "old style"}]), "old style"),
            ("[not json", "[not json"),
        ],
    )
    def test_input_fallbacks(self, raw: str, question: str) -> None:
        """The older content form and plain or broken text are read as the question."""
        assert parse_input(raw).question == question

    @pytest.mark.parametrize(
        ("raw", "text", "tool_call"),
        [
            (json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Hello."}]}]), "Hello.", False),
            (json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "name": "x"}]}]), "", True),
            (json.dumps([{"role": "assistant", "content": "Old."}]), "Old.", False),
            ("raw completion", "raw completion", False),
        ],
    )
    def test_output_text_and_tool_calls(self, raw: str, text: str, tool_call: bool) -> None:
        """Assistant text parts are joined; a tool-call-only output has no text but is marked."""
        answer = parse_output(raw)
        assert (answer.text, answer.tool_call) == (text, tool_call)

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (json.dumps([{"id": "d1", "content": "Doc one."}, {"id": "d2", "text": "Doc two."}]),
             ["Doc one.", "Doc two."]),
            (json.dumps({"orders": [{"order_id": "A-1", "eta_days": 3}, {"order_id": "B-2", "eta_days": 5}]}),
             ["order id, A-1, eta days, 3\norder id, B-2, eta days, 5"]),
            ("just text", ["just text"]),
            ("", []),
        ],
    )
    def test_documents_and_tool_results(self, raw: str, expected: list[str]) -> None:
        """Retrieved documents give their text; structured tool results give one line per record."""
        assert document_texts(raw) == expected
