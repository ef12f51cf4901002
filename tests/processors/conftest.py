"""Shared fixtures for the privacy processor tests: one masker (the NER model loads once)."""

from __future__ import annotations

import pytest

from processors import pii

TEST_KEY = "test-only-pii-token-key-0123456789"


def fixed_key(_ref: str) -> str:
    """A resolver that hands every secret reference the same test key."""
    return TEST_KEY


@pytest.fixture(scope="session")
def masker() -> pii.Masker:
    """The default masker with NER (the test extra installs the model)."""
    return pii.build_masker(pii.Config(ner="required"), fixed_key)
