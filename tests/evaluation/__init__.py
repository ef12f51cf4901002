"""Tests for the evaluation data: the PII corpus and the hallucination evaluation set."""
