"""Tests for the hallucination evaluation set: size, balance, labels by category and the domain-disjoint split."""

from __future__ import annotations

import collections
import json

from evaluation.hallucination.evalset import CATEGORIES, DEV_KINDS, KINDS, generate, split


def test_deterministic_per_seed() -> None:
    """The same seed gives the same set; another seed gives different items."""
    assert generate(7) == generate(7)
    assert [i.answer for i in generate(7)] != [i.answer for i in generate(8)]


def test_size_and_balance() -> None:
    """Several hundred items, with both labels well represented in both splits."""
    items = generate()
    assert len(items) >= 500
    for name in ("dev", "test"):
        labels = collections.Counter(i.label for i in split(items, name))
        assert min(labels.values()) >= 100


def test_labels_follow_categories_and_every_category_is_in_both_splits() -> None:
    """Each item's label is its category's, and every category appears in dev and in test."""
    items = generate()
    assert all(i.label == CATEGORIES[i.category] for i in items)
    for name in ("dev", "test"):
        assert {i.category for i in split(items, name)} == set(CATEGORIES)


def test_dev_and_test_hold_different_domains() -> None:
    """No fact template is in both splits, so calibration never sees a test domain."""
    items = generate()
    dev = {i.kind for i in split(items, "dev")}
    test = {i.kind for i in split(items, "test")}
    assert dev == set(DEV_KINDS) and not dev & test and dev | test == {k.name for k in KINDS}


def test_items_are_valid_span_content() -> None:
    """Content columns are JSON in the OTel GenAI message format, with evidence in the column the placement says."""
    for item in generate():
        messages = json.loads(item.input_messages)
        assert all("role" in m and "parts" in m for m in messages)
        assert json.loads(item.output_messages)[0]["parts"][0]["content"] == item.answer
        if item.placement == "retrieval":
            assert json.loads(item.retrieval_documents)
        if item.placement == "tool_column":
            assert json.loads(item.tool_call_result)


def test_paraphrases_are_not_copies_of_the_context() -> None:
    """Paraphrased answers never occur verbatim in their context, so grounded items are not only copies."""
    items = [i for i in generate() if i.category == "paraphrase"]
    assert all(i.answer not in i.retrieval_documents + i.input_messages for i in items)
