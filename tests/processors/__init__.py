"""Tests for processors."""
