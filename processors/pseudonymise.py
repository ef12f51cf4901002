"""Pseudonymisation, collector side: subject identifiers become HMAC-SHA256 pseudonyms under the
active node key, whose id is written to ``key_id``. The store side adds a second HMAC with its
pepper (``processors.pepper``); neither side alone can link a pseudonym back to a person.

This is pseudonymisation in the GDPR sense (Art. 4(5)): the output is still personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from processors.keyring import KeyKind, KeyRing, KeyRingError
from processors.quarantine import MAP_COLUMNS, fail_closed, subject_columns
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.config import resolve_secret
from sovtel.records import SPAN_CONTENT_COLUMNS, SPAN_SUBJECT_COLUMNS, Batch, Signal, map_entries

log = logging.getLogger("sovtel.processors.pseudonymise")

# Attribute keys (OpenTelemetry semantic conventions and common custom ones) that identify a person.
DEFAULT_ATTRIBUTE_KEYS: tuple[str, ...] = (
    "enduser.id",
    "enduser.pseudo.id",
    "user.id",
    "user.email",
    "user.name",
    "session.id",
    "gen_ai.conversation.id",
    "tenant.id",
)


class Config(ComponentConfig):
    """Where the key ring is and what to pseudonymise."""

    key_ring: Path = Field(description="Key ring file (references to keys, never the keys).")
    columns: list[str] = Field(default_factory=lambda: list(SPAN_SUBJECT_COLUMNS))
    attribute_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTRIBUTE_KEYS))
    digest_hex: int = Field(default=32, ge=16, le=64, description="Hex digits kept of each HMAC-SHA256.")
    reload_interval_s: float = Field(default=10.0, ge=0.0, description="How often the key ring file is checked.")
    on_error: Literal["quarantine", "drop"] = "quarantine"


def validate_config(cfg: Config) -> list[str]:
    """Problems pydantic cannot see: unknown subject columns."""
    return [f"columns: {c!r} is not a subject column" for c in cfg.columns if c not in SPAN_SUBJECT_COLUMNS]


def pseudonym(key: bytes, value: str, digest_hex: int = 32) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, as ``digest_hex`` lower-case hex digits."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:digest_hex]


@dataclass(frozen=True)
class ActiveKey:
    """A resolved key and its id."""

    key_id: str
    material: bytes


class KeySource:
    """The active key of one kind from a key ring file, reloaded when the file changes.

    A reload that fails (file being edited, a reference that does not resolve yet) keeps the key
    in use and logs why, so a rotation mistake never stops the pipeline; a ring that cannot be
    read at start-up raises, so a misconfiguration does.
    """

    def __init__(
        self,
        path: Path,
        kind: KeyKind,
        resolve: Callable[[str], str] = resolve_secret,
        reload_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.kind = kind
        self.resolve = resolve
        self.reload_interval_s = reload_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._mtime = self._stat()
        self._checked = clock()
        self.ring = KeyRing.load(path)
        self._active = self._load_active(self.ring)

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return -1.0

    def _load_active(self, ring: KeyRing) -> ActiveKey:
        key_id = ring.active(self.kind)
        return ActiveKey(key_id, ring.key(self.kind, key_id, self.resolve))

    def current(self) -> ActiveKey:
        """The active key, after reloading the ring if it changed (checked at most every interval)."""
        now = self.clock()
        if now - self._checked < self.reload_interval_s:
            return self._active
        with self._lock:
            if now - self._checked < self.reload_interval_s:
                return self._active
            self._checked = now
            mtime = self._stat()
            if mtime != self._mtime:
                try:
                    ring = KeyRing.load(self.path)
                    active = self._load_active(ring)
                except KeyRingError as exc:
                    log.warning("key ring reload failed, keeping %s key %s: %s", self.kind, self._active.key_id, exc)
                else:
                    if active.key_id != self._active.key_id:
                        log.info("%s key rotated: %s -> %s", self.kind, self._active.key_id, active.key_id)
                    self.ring, self._active, self._mtime = ring, active, mtime
        return self._active


class ProcessorKeys:
    """A processor's key source: opened by ``start`` (or on first use, when the runtime did not
    start the processor), dropped by ``shutdown``. Opening raises KeyRingError naming the config key."""

    def __init__(self, path: Path, kind: KeyKind, reload_interval_s: float, source: KeySource | None = None) -> None:
        self.path = path
        self.kind = kind
        self.reload_interval_s = reload_interval_s
        # A source handed in belongs to the caller: shutdown keeps it.
        self._given = source
        self.source = source
        self._lock = threading.Lock()

    def start(self, context: ComponentContext) -> None:
        """Load the key ring and resolve the active key, unless already done."""
        with self._lock:
            if self.source is None:
                try:
                    self.source = KeySource(self.path, self.kind, context.resolve_secret, self.reload_interval_s)
                except KeyRingError as exc:
                    raise KeyRingError(f"processors.{context.name}.key_ring: {exc}") from None

    def shutdown(self) -> None:
        """Forget the ring and its key material; idempotent and safe without start."""
        with self._lock:
            self.source = self._given

    def current(self, context: ComponentContext) -> ActiveKey:
        """The active key, opening the ring first if ``start`` was not called."""
        source = self.source
        if source is None:
            self.start(context)
            source = self.source
            if source is None:
                raise KeyRingError(f"the {self.kind} keys of {context.name} were released by shutdown")
        return source.current()


def hash_column(column: pa.ChunkedArray | pa.Array, key: bytes, digest_hex: int) -> pa.Array:
    """Every non-empty value replaced by its pseudonym; each distinct value is hashed once."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(arr)
    hashed = pa.array(
        [pseudonym(key, v, digest_hex) if v else "" for v in encoded.dictionary.to_pylist()], type=pa.string()
    )
    return hashed.take(encoded.indices)


def hash_attribute_values(
    column: pa.ChunkedArray, keys: Iterable[str], key: bytes, digest_hex: int
) -> tuple[pa.ChunkedArray, int]:
    """A map (or list of maps) column with the values of ``keys`` pseudonymised; and how many."""
    wanted = pa.array(sorted(set(keys)), type=pa.string())
    entries = map_entries(column)
    hit = pc.is_in(entries.keys, value_set=wanted)
    n = int(pc.sum(hit).as_py() or 0)
    if n == 0:
        return column, 0
    new_items = pc.if_else(hit, hash_column(entries.items, key, digest_hex), entries.items)
    return entries.rebuild(entries.keys, new_items), n


class SubjectHasher:
    """Applies one HMAC layer to a batch's subject columns and configured attribute values."""

    def __init__(self, columns: Iterable[str], attribute_keys: Iterable[str], digest_hex: int) -> None:
        self.columns = tuple(columns)
        self.attribute_keys = tuple(attribute_keys)
        self.digest_hex = digest_hex

    def apply(
        self, table: pa.Table, signal_maps: Iterable[str], key: bytes, rows: np.ndarray | None = None
    ) -> pa.Table:
        """Hash the selected rows (all by default); other rows keep their values."""
        mask = None if rows is None else pa.array(rows, type=pa.bool_())
        for name in self.columns:
            if name not in table.schema.names:
                continue
            i = table.schema.get_field_index(name)
            hashed = hash_column(table.column(i), key, self.digest_hex)
            if mask is not None:
                hashed = pc.if_else(mask, hashed, table.column(i).combine_chunks())
            table = table.set_column(i, table.schema.field(i), hashed)
        if self.attribute_keys:
            for name in signal_maps:
                i = table.schema.get_field_index(name)
                original = table.column(i)
                hashed_col, n = hash_attribute_values(original, self.attribute_keys, key, self.digest_hex)
                if n and mask is not None:
                    hashed_col = pa.chunked_array(
                        [pc.if_else(mask, hashed_col.combine_chunks(), original.combine_chunks())], type=original.type
                    )
                if n:
                    table = table.set_column(i, table.schema.field(i), hashed_col)
        return table


# Free-text columns in which applications echo identifiers ("inference failed for user-0386").
ECHO_TEXT_COLUMNS: dict[Signal, tuple[str, ...]] = {
    Signal.TRACES: (*SPAN_CONTENT_COLUMNS, "status_message"),
    Signal.LOGS: ("body",),
}
MIN_ECHO_CHARS = 4


def replace_echoes(
    original: pa.Table, hashed: pa.Table, signal: Signal, columns: Iterable[str]
) -> tuple[pa.Table, int]:
    """Replace each row's raw subject values where its own free text repeats them by the row's pseudonym.

    The subject columns are hashed column-wise; an identifier an application also wrote into a
    prompt or a log line would otherwise be stored in clear beside its own pseudonym.
    """
    texts = [c for c in ECHO_TEXT_COLUMNS.get(signal, ()) if c in original.schema.names]
    subjects = [c for c in columns if c in original.schema.names]
    if not texts or not subjects:
        return hashed, 0
    raw = {c: original.column(c).to_pylist() for c in subjects}
    new = {c: hashed.column(c).to_pylist() for c in subjects}
    replaced = 0
    for name in texts:
        values = hashed.column(name).to_pylist()
        changed = False
        for row, original_text in enumerate(values):
            if not original_text:
                continue
            text = original_text
            for c in subjects:
                v = raw[c][row]
                if v and len(v) >= MIN_ECHO_CHARS and v in text:
                    text = text.replace(v, new[c][row])
                    replaced += 1
                    changed = True
            values[row] = text
        if changed:
            i = hashed.schema.get_field_index(name)
            hashed = hashed.set_column(i, hashed.schema.field(i), pa.array(values, type=pa.string()))
    return hashed, replaced


def set_key_ids(table: pa.Table, values: pa.Array) -> pa.Table:
    """The table with ``key_id`` replaced (no-op for signals without the column)."""
    if "key_id" not in table.schema.names:
        return table
    i = table.schema.get_field_index("key_id")
    return table.set_column(i, table.schema.field(i), values)


class Pseudonymise:
    """The processor: HMAC with the active node key; ``key_id`` records which key."""

    def __init__(self, ctx: ComponentContext, cfg: Config, keys: KeySource | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.keys = ProcessorKeys(cfg.key_ring, "node", cfg.reload_interval_s, keys)
        self.hasher = SubjectHasher(cfg.columns, cfg.attribute_keys, cfg.digest_hex)

    def start(self, context: ComponentContext) -> None:
        """Load the key ring and resolve the active node key; KeyRingError if the file is missing or
        malformed, the active id unknown or its secret unresolvable."""
        self.keys.start(context)

    def shutdown(self) -> None:
        """Release the key ring; idempotent and safe without start."""
        self.keys.shutdown()

    def __call__(self, batch: Batch) -> Batch:
        """Pseudonymise the batch; if hashing fails, no subject value leaves raw."""
        if batch.rows == 0:
            return batch
        try:
            active = self.keys.current(self.ctx)
            table = self.hasher.apply(batch.table, MAP_COLUMNS[batch.signal], active.material)
            table, echoed = replace_echoes(batch.table, table, batch.signal, self.hasher.columns)
            self.ctx.telemetry.removed(batch.signal.value, echoed, "identifier_echoed_in_text")
            table = set_key_ids(table, pa.array([active.key_id] * batch.rows, type=pa.string()))
            return batch.replace(table)
        except Exception as exc:
            # Key ring messages never hold key material; other errors may quote data, so only their type.
            reason = str(exc) if isinstance(exc, KeyRingError) else type(exc).__name__
            log.error("pseudonymisation failed for %d %s records (%s)", batch.rows, batch.signal.value, reason)
            rows = np.ones(batch.rows, dtype=bool)
            table = fail_closed(
                batch.table, batch.signal, rows, mode=self.cfg.on_error, reason="pseudonymise_error",
                telemetry=self.ctx.telemetry, subjects=True,
            )  # fmt: skip
            # Quarantine empties every attribute value too, so no identifier in a map stays raw.
            return batch.replace(table)


def subject_pseudonyms(
    subject: str, ring: KeyRing, resolve: Callable[[str], str] = resolve_secret, digest_hex: int = 32
) -> dict[str, str]:
    """A subject's pseudonyms under every known key: ``{"n1": …}`` for collector-side values and
    ``{"n1:p1": …}`` for stored ones, for every node and pepper pair. The erasure job looks these up
    in every table's subject columns. Keys that cannot be resolved raise KeyRingError."""
    out: dict[str, str] = {}
    node = ring.keyset("node")
    peppers = ring.pepper.keys if ring.pepper is not None else {}
    pepper_keys = {pid: ring.key("pepper", pid, resolve) for pid in peppers}
    for nid in node.keys:
        first = pseudonym(ring.key("node", nid, resolve), subject, digest_hex)
        out[nid] = first
        for pid, pkey in pepper_keys.items():
            out[f"{nid}:{pid}"] = pseudonym(pkey, first, digest_hex)
    return out


def create(ctx: ComponentContext, config: Config) -> Pseudonymise:
    """Build the processor; ``start`` fails if the active node key cannot be resolved."""
    return Pseudonymise(ctx, config)


__all__ = [
    "Config",
    "KeySource",
    "ProcessorKeys",
    "Pseudonymise",
    "SubjectHasher",
    "create",
    "pseudonym",
    "subject_columns",
    "subject_pseudonyms",
]
