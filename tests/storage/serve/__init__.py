"""Tests of `sovtel serve` (storage/serve)."""
