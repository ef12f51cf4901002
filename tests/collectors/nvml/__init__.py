"""Tests for the nvml receiver."""
