"""Tests for the PII corpus generator and its leak scorer."""
