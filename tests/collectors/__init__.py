"""Tests for collectors."""
