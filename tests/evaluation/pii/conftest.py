"""Fixtures for the PII corpus tests: one masker (the NER model loads once)."""

from __future__ import annotations

import pytest

from processors import pii

TEST_KEY = "test-only-pii-token-key-0123456789"


@pytest.fixture(scope="session")
def masker() -> pii.Masker:
    """The default masker with NER (the test extra installs the model)."""
    return pii.build_masker(pii.Config(ner="required"), lambda _ref: TEST_KEY)
