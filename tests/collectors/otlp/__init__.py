"""Tests for the OTLP receiver."""
