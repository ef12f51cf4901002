"""Pseudonymisation, store side: a second HMAC-SHA256 with the store's pepper over the collector's
pseudonyms, and ``key_id`` extended to ``node:pepper`` (e.g. ``n1:p1``).

The sink-side pipeline runs it just before insert. A record that arrives without a node key id was
never pseudonymised: its subject values are raw, so it is quarantined, not peppered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from processors.keyring import KeyRingError
from processors.pseudonymise import (
    DEFAULT_ATTRIBUTE_KEYS,
    KeySource,
    ProcessorKeys,
    SubjectHasher,
    replace_echoes,
    set_key_ids,
)
from processors.quarantine import MAP_COLUMNS, fail_closed
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import SPAN_SUBJECT_COLUMNS, Batch, Signal

log = logging.getLogger("sovtel.processors.pepper")


class Config(ComponentConfig):
    """Where the key ring is; columns and attribute keys must match the collector's pseudonymise."""

    key_ring: Path
    columns: list[str] = Field(default_factory=lambda: list(SPAN_SUBJECT_COLUMNS))
    attribute_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTRIBUTE_KEYS))
    digest_hex: int = Field(default=32, ge=16, le=64)
    reload_interval_s: float = Field(default=10.0, ge=0.0)
    on_error: Literal["quarantine", "drop"] = "quarantine"


class Pepper:
    """The processor: HMAC with the active pepper over rows the collector pseudonymised."""

    def __init__(self, ctx: ComponentContext, cfg: Config, keys: KeySource | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.keys = ProcessorKeys(cfg.key_ring, "pepper", cfg.reload_interval_s, keys)
        self.hasher = SubjectHasher(cfg.columns, cfg.attribute_keys, cfg.digest_hex)

    def start(self, context: ComponentContext) -> None:
        """Load the key ring and resolve the active pepper; KeyRingError if the file is missing or
        malformed, the active id unknown or its secret unresolvable."""
        self.keys.start(context)

    def shutdown(self) -> None:
        """Release the key ring; idempotent and safe without start."""
        self.keys.shutdown()

    def __call__(self, batch: Batch) -> Batch:
        """Pepper pseudonymised rows; quarantine rows that were never pseudonymised; leave rows
        that were already peppered as they are (a replayed batch must not be hashed twice)."""
        if batch.rows == 0 or "key_id" not in batch.table.schema.names:
            return batch
        signal = batch.signal
        try:
            active = self.keys.current(self.ctx)
            key_ids = batch.table.column("key_id").combine_chunks()
            empty = pc.equal(key_ids, "").to_numpy(zero_copy_only=False)
            peppered = pc.match_substring(key_ids, ":").to_numpy(zero_copy_only=False)
            todo = ~empty & ~peppered
            table = batch.table
            if todo.any():
                table = self.hasher.apply(table, MAP_COLUMNS[signal], active.material, rows=todo)
                # Node-level pseudonyms echoed into text get the pepper too, or the node key alone
                # could link those rows to a person.
                table, echoed = replace_echoes(batch.table, table, signal, self.hasher.columns)
                self.ctx.telemetry.removed(signal.value, echoed, "identifier_echoed_in_text")
                new_ids = pc.if_else(pa.array(todo), pc.binary_join_element_wise(key_ids, active.key_id, ":"), key_ids)
                table = set_key_ids(table, new_ids)
            if empty.any():
                table = self._fail_closed(table, signal, empty, "not_pseudonymised")
            return batch.replace(table)
        except Exception as exc:
            # Key ring messages never hold key material; other errors may quote data, so only their type.
            reason = str(exc) if isinstance(exc, KeyRingError) else type(exc).__name__
            log.error("peppering failed for %d %s records (%s)", batch.rows, signal.value, reason)
            everything = np.ones(batch.rows, dtype=bool)
            return batch.replace(self._fail_closed(batch.table, signal, everything, "pepper_error"))

    def _fail_closed(self, table: pa.Table, signal: Signal, rows: np.ndarray, reason: str) -> pa.Table:
        """Quarantine or drop ``rows`` (per config), subjects included, counted under ``reason``."""
        return fail_closed(
            table, signal, rows, mode=self.cfg.on_error, reason=reason, telemetry=self.ctx.telemetry, subjects=True
        )


def create(ctx: ComponentContext, config: Config) -> Pepper:
    """Build the processor; ``start`` fails if the active pepper cannot be resolved."""
    return Pepper(ctx, config)
