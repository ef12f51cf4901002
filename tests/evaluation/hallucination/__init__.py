"""Tests for the hallucination evaluation set and its scorer."""
