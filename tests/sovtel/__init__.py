"""Tests for sovtel."""
