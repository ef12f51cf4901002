"""Tests for reading the evaluation data files: shapes are checked as they load, with the place named."""

from __future__ import annotations

import pytest

from evaluation.datafiles import DataFileError, load, mapping, per_language, scalars, text, texts


class TestShapes:
    @pytest.mark.parametrize(
        ("check", "value"),
        [
            (mapping, ["a"]),
            (mapping, {1: "a"}),
            (text, 3),
            (texts, []),
            (texts, ["a", 2]),
            (texts, "a"),
            (scalars, [True]),
            (scalars, [None]),
        ],
    )
    def test_wrong_shapes_are_rejected_with_their_place(self, check: object, value: object) -> None:
        """A value of the wrong shape raises DataFileError naming where it sits."""
        with pytest.raises(DataFileError, match="here"):
            check(value, "here")  # type: ignore[operator]

    def test_right_shapes_come_back_in_file_order(self) -> None:
        """Lists keep their order and come back as tuples; numbers stay numbers."""
        assert texts(["b", "a"], "x") == ("b", "a")
        assert scalars(["08:30", 7, 1.5], "x") == ("08:30", 7, 1.5)
        assert mapping({"k": 1}, "x") == {"k": 1}

    def test_per_language_needs_exactly_the_languages(self) -> None:
        """Per-language tables must cover every language and no other."""
        assert per_language({"fr": ["b"], "de": ["a"]}, ("de", "fr"), "x") == {"de": ("a",), "fr": ("b",)}
        with pytest.raises(DataFileError, match="languages"):
            per_language({"de": ["a"]}, ("de", "fr"), "x")
        with pytest.raises(DataFileError, match="languages"):
            per_language({"de": ["a"], "fr": ["b"], "xx": ["c"]}, ("de", "fr"), "x")


def test_load_reads_a_package_data_file() -> None:
    """load returns the top-level mapping of a file in the package's data folder."""
    assert "categories" in load("evaluation.hallucination", "answers.yaml")
