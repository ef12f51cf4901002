"""Retention policies and their enforcement, GDPR erasure, the AI-Act store and ledger, and audit checks."""
