"""GPU ↔ request attribution job: stores the live view's per-minute rows in ``gpu_request_attribution``.

The live view (storage/migrations/0500_gpu_genai.sql) needs token_usage, which keeps only the
personal retention; this job keeps the non-personal result for the operational retention.
"""

from __future__ import annotations

import re

from storage.backend import Store

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def refresh_gpu_attribution(store: Store, database: str = "sovtel", lookback_minutes: int = 120) -> int:
    """Recompute the last ``lookback_minutes`` (complete minutes only) into the table; returns rows written.

    Safe to run as often as wanted: a recomputed minute replaces the earlier row (ReplacingMergeTree
    on ``computed_at``; read with FINAL).
    """
    if not _IDENTIFIER.match(database):
        raise ValueError(f"database {database!r} must be a plain identifier")
    if lookback_minutes < 1:
        raise ValueError("lookback_minutes must be at least 1")
    where = (
        f"minute >= toStartOfMinute(now() - INTERVAL {int(lookback_minutes)} MINUTE)"
        " AND minute < toStartOfMinute(now())"
    )
    rows = store.query_rows(f"SELECT count() FROM {database}.gpu_request_attribution_live WHERE {where}")
    store.command(
        f"INSERT INTO {database}.gpu_request_attribution "
        "(minute, node, request_model, provider, requests, tokens, token_share, gpu_seconds, energy_j, computed_at) "
        "SELECT minute, node, request_model, provider, requests, tokens, token_share, gpu_seconds, energy_j, now64(3) "
        f"FROM {database}.gpu_request_attribution_live WHERE {where}"
    )
    return int(rows[0][0]) if rows else 0
