"""Processors: one module per transformation (minimise, pii, pseudonymise, generalise, dp, classify)."""
