"""PII masking: personal data and secrets in content and attribute values become keyed tokens.

Each detected value is replaced by ``<ENTITY:hex>`` where hex is an HMAC of the value under the
configured key, so the same value gives the same token everywhere and different values differ,
without the token revealing the value. JSON content (GenAI messages, tool arguments) is masked
leaf by leaf, keys as context, and stays valid JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from processors.quarantine import CONTENT_COLUMNS, MAP_COLUMNS, fail_closed
from processors.recognizers import ENTITIES, default_recognizers
from processors.recognizers.person_ner import DEFAULT_MODEL, SpacyPersonRecognizer, model_installed
from processors.recognizers.scan import DEFAULT_THRESHOLD, Finding, Scanner
from sovtel.component import ComponentConfig, ComponentContext
from sovtel.config import SecretRef
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.processors.pii")

# A token this processor wrote; masking it again must leave it as it is.
TOKEN_RE = re.compile(r"<[A-Z][A-Z0-9_]*:[0-9a-f]{4,64}>")

# JSON keys whose whole value is a credential, whatever it looks like.
DEFAULT_SECRET_KEYS = (
    r"(?:^|[_.\-\s])(?:pass(?:word|wd|phrase)?|passwort|pwd|secret|client[_\-]?secret|api[_\-]?key|apikey"  # noqa: S105
    r"|access[_\-]?key|secret[_\-]?key|private[_\-]?key|authorization|bearer|cookie|set[_\-]cookie"
    r"|credentials?|session(?:[_\-]?(?:id|key))?|(?:access|refresh|id|auth|api|bearer|session|csrf|xsrf|oauth)?[_\-]?token)$"
)

# JSON keys whose values are structure, not prose: masked by patterns but never worth NER.
STRUCTURAL_KEYS = frozenset(
    {"role", "type", "finish_reason", "id", "tool_call_id", "call_id", "mime_type", "format", "model", "index"}
)

MAX_DEPTH = 64


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


@dataclass(slots=True)
class Masked:
    """The masked form of one value, what was found in it, or why it could not be masked."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None


@dataclass(slots=True, eq=False)
class _Leaf:
    """A collected text inside a JSON document: its raw token and how to write it back."""

    index: int
    raw: str
    kind: Literal["string", "number", "nested"] = "string"
    nested: list[Any] | None = None  # template of a JSON document inside a string


# JSON tokens: string literals, structural characters, scalars, whitespace. Only applied to text
# json.loads has accepted, so the tokens are well formed.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+')
_LONG_INT = re.compile(r"-?\d{6,}")


class _Leaves:
    """Texts collected from values (JSON leaves and keys, plain strings) for one batched scan."""

    def __init__(self, secret_keys: re.Pattern[str]) -> None:
        self.texts: list[str] = []
        self.contexts: list[str] = []
        self.ner: list[bool] = []
        self.forced: list[bool] = []
        self.secret_keys = secret_keys

    def add(self, text: str, keys: Sequence[str], ner: bool = True) -> int:
        """Collect one text; ``keys`` (innermost last) are its JSON path or attribute key."""
        nearest = keys[-1].lower() if keys else ""
        self.texts.append(text)
        self.contexts.append(" ".join(re.sub(r"[_.\-]+", " ", k) for k in keys[-3:]))
        self.ner.append(ner and nearest not in STRUCTURAL_KEYS)
        self.forced.append(bool(nearest) and bool(text) and self.secret_keys.search(nearest) is not None)
        return len(self.texts) - 1

    def truncate(self, n: int) -> None:
        """Forget texts collected after the first ``n`` (a value that failed part-way)."""
        del self.texts[n:], self.contexts[n:], self.ner[n:], self.forced[n:]

    def template(self, text: str, keys: tuple[str, ...], depth: int = 0) -> list[Any]:
        """The JSON document ``text`` (already validated) as raw pieces and leaves, so that only
        masked strings are rewritten and everything else keeps its exact formatting."""
        if depth > MAX_DEPTH:
            raise ValueError("JSON nested too deeply to mask")
        parts: list[Any] = []
        # One frame per open container: [is_object, current key, expecting a key].
        stack: list[list[Any]] = []
        for m in _JSON_TOKEN.finditer(text):
            tok = m.group()
            c = tok[0]
            if c == '"':
                value = json.loads(tok)
                frame = stack[-1] if stack else None
                path = (*keys, *(str(f[1]) for f in stack if f[1] is not None))
                if frame is not None and frame[0] and frame[2]:
                    frame[1], frame[2] = value, False
                    parts.append(_Leaf(self.add(value, path, ner=False), tok) if value else tok)
                    continue
                nested = _json_container(value)
                if nested is not None:
                    first = len(self.texts)
                    inner = self.template(value, path, depth + 1)
                    parts.append(_Leaf(first, tok, "nested", inner))
                else:
                    parts.append(_Leaf(self.add(value, path), tok) if value else tok)
            elif c in "{[":
                if len(stack) >= MAX_DEPTH:
                    raise ValueError("JSON nested too deeply to mask")
                stack.append([c == "{", stack[-1][1] if stack and c == "[" else None, c == "{"])
                parts.append(tok)
            elif c in "}]":
                stack.pop()
                parts.append(tok)
            elif c == ",":
                if stack and stack[-1][0]:
                    stack[-1][1], stack[-1][2] = None, True
                parts.append(tok)
            elif _LONG_INT.fullmatch(tok):
                path = (*keys, *(str(f[1]) for f in stack if f[1] is not None))
                parts.append(_Leaf(self.add(tok, path, ner=False), tok, "number"))
            else:
                parts.append(tok)
        return parts


def _json_container(text: str) -> str | None:
    """``text`` itself if it is a JSON object or array, else None (a cheap check before parsing)."""
    head = text[:1] if text[:1] not in " \n\t\r" else text.lstrip()[:1]
    if head not in ("{", "["):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return text if isinstance(value, dict | list) else None


def _render(parts: list[Any], texts: Sequence[str], changed: Sequence[bool]) -> tuple[str, bool]:
    """The document rebuilt from its template; (text, whether anything changed)."""
    out: list[str] = []
    any_change = False
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif p.kind == "nested":
            assert p.nested is not None
            inner, inner_changed = _render(p.nested, texts, changed)
            out.append(json.dumps(inner, ensure_ascii=False) if inner_changed else p.raw)
            any_change |= inner_changed
        elif changed[p.index]:
            # A masked number becomes a string token: still valid JSON.
            out.append(json.dumps(texts[p.index], ensure_ascii=False))
            any_change = True
        else:
            out.append(p.raw)
    return "".join(out), any_change


class Masker:
    """Masks texts and JSON documents with one scanner and one token key; shared by the processor
    and ``sovtel privacy scrub`` so both mask exactly alike."""

    def __init__(
        self,
        scanner: Scanner,
        key: bytes,
        token_hex: int = 6,
        secret_keys: str = DEFAULT_SECRET_KEYS,
        max_text_chars: int = 1_000_000,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the PII token key must be at least 16 bytes")
        self.scanner = scanner
        self._key = key
        self.token_hex = token_hex
        self.secret_keys = re.compile(secret_keys, re.IGNORECASE)
        self.max_text_chars = max_text_chars

    @property
    def entities(self) -> tuple[str, ...]:
        """Entity types this masker can report (SECRET always: it comes from secret keys too)."""
        return tuple(dict.fromkeys((*self.scanner.entities, "SECRET")))

    def token(self, entity: str, value: str) -> str:
        """The replacement token of a value: same value and key → same token."""
        digest = hmac.new(self._key, f"{entity}\x1f{value}".encode(), hashlib.sha256).hexdigest()
        return f"<{entity}:{digest[: self.token_hex]}>"

    def _apply(self, text: str, findings: Iterable[Finding], counts: Counter[str]) -> str:
        out, pos = [], 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(self.token(f.entity, f.value))
            counts[f.entity] += 1
            pos = f.end
        if pos == 0:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _scan_leaves(self, leaves: _Leaves) -> tuple[list[str], list[Counter[str]], list[bool], set[int]]:
        """Masked text, counts and 'changed' per leaf, and the leaves that could not be scanned."""
        n = len(leaves.texts)
        todo = [
            i for i in range(n) if not leaves.forced[i] and leaves.texts[i] and not TOKEN_RE.fullmatch(leaves.texts[i])
        ]
        failed: set[int] = set()
        try:
            found = self.scanner.scan_many(
                [leaves.texts[i] for i in todo], [leaves.contexts[i] for i in todo], [leaves.ner[i] for i in todo]
            )
        except TimeoutError:
            # Find the text(s) a pattern stalled on, one by one; the rest are masked as usual.
            found = []
            for i in todo:
                try:
                    found.extend(self.scanner.scan_many([leaves.texts[i]], [leaves.contexts[i]], [leaves.ner[i]]))
                except TimeoutError:
                    failed.add(i)
                    found.append([])
        findings: list[list[Finding]] = [[] for _ in range(n)]
        for i, f in zip(todo, found, strict=True):
            findings[i] = f
        out, counts, changed = [], [], []
        for i, text in enumerate(leaves.texts):
            c: Counter[str] = Counter()
            if leaves.forced[i] and not TOKEN_RE.fullmatch(text):
                masked = self._apply(text, [Finding("SECRET", 0, len(text), 1.0, text)], c)
            else:
                masked = self._apply(text, findings[i], c)
            out.append(masked)
            counts.append(c)
            changed.append(masked is not text)
        return out, counts, changed, failed

    def mask_values(
        self, values: Sequence[str], keys: Sequence[str] | None = None, documents: bool = False
    ) -> list[Masked]:
        """Mask each value; ``keys`` are the attribute keys or column names the values sit under,
        used as context and to spot secrets.

        A value holding a JSON object or array is masked string by string and stays valid JSON
        with its formatting kept; with ``documents`` every value must be a JSON document (any
        type, already validated). A value that cannot be masked comes back with ``error`` set and
        its text emptied: never raw.
        """
        leaves = _Leaves(self.secret_keys)
        plans: list[tuple[Any, int, int] | str] = []
        for i, value in enumerate(values):
            key = (keys[i],) if keys is not None and keys[i] else ()
            first = len(leaves.texts)
            try:
                if len(value) > self.max_text_chars:
                    raise ValueError(f"value longer than {self.max_text_chars} characters")
                if documents or _json_container(value) is not None:
                    plan: Any = leaves.template(value, key)
                else:
                    plan = leaves.add(value, key)
            except (ValueError, RecursionError) as exc:
                leaves.truncate(first)
                plans.append(str(exc) or type(exc).__name__)
                continue
            plans.append((plan, first, len(leaves.texts)))
        texts, counts, changed, failed = self._scan_leaves(leaves)
        results: list[Masked] = []
        for value, item in zip(values, plans, strict=True):
            if isinstance(item, str):
                results.append(Masked("", error=item))
                continue
            plan, lo, hi = item
            if failed and any(lo <= i < hi for i in failed):
                results.append(Masked("", error="a pattern timed out on this value"))
                continue
            total: Counter[str] = Counter()
            for c in counts[lo:hi]:
                total.update(c)
            if not any(changed[lo:hi]):
                results.append(Masked(value, total))
            elif isinstance(plan, int):
                results.append(Masked(texts[plan], total))
            else:
                results.append(Masked(_render(plan, texts, changed)[0], total))
        return results


def load_ner(cfg: Config) -> SpacyPersonRecognizer | None:
    """The NER recognizer per ``cfg.ner``; logs once, clearly, when the model is not installed."""
    if cfg.ner == "off" or (cfg.entities is not None and "PERSON" not in cfg.entities):
        return None
    if not model_installed(cfg.ner_model):
        message = (
            f"spaCy model package for {cfg.ner_model!r} is not installed: person names are found by patterns only "
            "(install it with: pip install 'sovtel[ner]')"
        )
        if cfg.ner == "required":
            raise RuntimeError(message)
        log.warning(message)
        return None
    return SpacyPersonRecognizer(cfg.ner_model, batch_size=cfg.ner_batch_size)


def build_masker(cfg: Config, resolve_secret: Any) -> Masker:
    """A masker for ``cfg``, its key resolved through ``resolve_secret`` (raises if it cannot be)."""
    entities = tuple(cfg.entities) if cfg.entities is not None else None
    scanner = Scanner(default_recognizers(entities), load_ner(cfg), threshold=cfg.score_threshold)
    value = str(resolve_secret(cfg.key))
    if value == cfg.key:
        # A resolver that hands back the reference itself would make a public string the key.
        raise ValueError(f"PII token key {cfg.key}: the reference was not resolved to a secret")
    key = value.encode()
    return Masker(scanner, key, cfg.token_hex, cfg.secret_keys, cfg.max_text_chars)


@dataclass
class _Column:
    """One column's values prepared for masking: unique (value, key) pairs and where they sit."""

    name: str
    kind: Literal["text", "map", "list_map"]
    slots: np.ndarray  # per element: index into the batch-wide unique list
    rows: np.ndarray  # per element: row number
    rebuild: Any  # callable(new_values: pa.Array) -> pa.ChunkedArray


class PiiMasking:
    """The processor: masks the configured text columns and all attribute values of a batch, fills
    ``pii_count`` / ``pii_entities``, and quarantines (or drops) records it cannot mask."""

    def __init__(self, ctx: ComponentContext, cfg: Config, masker: Masker | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.masker = masker if masker is not None else build_masker(cfg, ctx.resolve_secret)
        self.entity_index = {e: i for i, e in enumerate(self.masker.entities)}

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
        try:
            return self._process(batch)
        except Exception as exc:
            log.error(
                "PII masking failed on a %s batch of %d records (%s); quarantining them",
                batch.signal.value,
                batch.rows,
                type(exc).__name__,
            )
            rows = np.ones(batch.rows, dtype=bool)
            table = fail_closed(
                batch.table,
                batch.signal,
                rows,
                mode=self.cfg.on_error,
                reason="pii_error",
                telemetry=self.ctx.telemetry,
            )
            return batch.replace(table)

    def _process(self, batch: Batch) -> Batch:
        table = batch.table.combine_chunks() if batch.table.column(0).num_chunks > 1 else batch.table
        unique: dict[tuple[str, str], int] = {}
        columns: list[_Column] = []
        for name in self._text_columns(batch.signal):
            columns.append(_prepare_text(table, name, unique))
        if self.cfg.attributes:
            for name in MAP_COLUMNS[batch.signal]:
                columns.append(_prepare_map(table, name, unique))
        pairs = list(unique)
        masked = self.masker.mask_values([v for v, _ in pairs], [k for _, k in pairs])

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


def _slot_ids(values: pa.Array, keys: pa.Array | str, unique: dict[tuple[str, str], int]) -> np.ndarray:
    """Index of each (value, key) in the batch-wide unique list, adding new pairs; empty values → -1.

    Attribute maps repeat the same pairs on every row (resource attributes above all), so pairs are
    deduplicated with Arrow dictionary encoding first and Python only sees each distinct pair once.
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    venc = pc.dictionary_encode(values)
    vdict = venc.dictionary.to_pylist()
    vidx = venc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if isinstance(keys, str):
        kdict, kidx = [keys], np.zeros(len(vidx), dtype=np.int64)
    else:
        kenc = pc.dictionary_encode(keys)
        kdict = kenc.dictionary.to_pylist()
        kidx = kenc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pair_codes, inverse = np.unique(kidx * len(vdict) + vidx, return_inverse=True)
    pair_slots = np.empty(len(pair_codes), dtype=np.int64)
    for j, code in enumerate(pair_codes.tolist()):
        k, v = kdict[code // len(vdict)], vdict[code % len(vdict)]
        if not v:
            pair_slots[j] = -1
            continue
        slot = unique.get((v, k))
        if slot is None:
            slot = unique[(v, k)] = len(unique)
        pair_slots[j] = slot
    return pair_slots[inverse.reshape(-1)]


def _take_masked(new_values: pa.Array, slots: np.ndarray, original: pa.Array) -> pa.Array:
    """The masked value per element (the original where the element was empty)."""
    if not len(slots):
        return original
    safe = np.where(slots < 0, 0, slots)
    taken = new_values.take(pa.array(safe)) if len(new_values) else pa.array([""] * len(slots), type=pa.string())
    return pc.if_else(pa.array(slots < 0), original, taken)


def _prepare_text(table: pa.Table, name: str, unique: dict[tuple[str, str], int]) -> _Column:
    arr = table.column(name).combine_chunks()
    slots = _slot_ids(arr, name, unique)
    keep = slots >= 0

    def rebuild(new_values: pa.Array) -> pa.ChunkedArray:
        return pa.chunked_array([_take_masked(new_values, slots, arr)], type=pa.string())

    return _Column(name, "text", slots[keep], np.flatnonzero(keep), rebuild)


def _map_parts(arr: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Offsets rebased to zero and the keys/items of the map array's own range."""
    offsets = arr.offsets.to_numpy(zero_copy_only=False)
    start, end = int(offsets[0]), int(offsets[-1])
    keys, items = arr.keys, arr.items
    if start != 0 or len(keys) != end:
        keys, items = keys.slice(start, end - start), items.slice(start, end - start)
    return offsets - start, keys, items


def _prepare_map(table: pa.Table, name: str, unique: dict[tuple[str, str], int]) -> _Column:
    column = table.column(name).combine_chunks()
    field_type = table.schema.field(name).type
    if isinstance(column, pa.MapArray):
        offsets, keys, items = _map_parts(column)
        entry_rows = np.repeat(np.arange(len(column)), np.diff(offsets))
        list_offsets = None
        inner_offsets = offsets
    else:  # list<map>: maps inside lists (span events)
        list_offsets_raw = column.offsets.to_numpy(zero_copy_only=False)
        inner_map = column.values.slice(int(list_offsets_raw[0]), int(list_offsets_raw[-1] - list_offsets_raw[0]))
        list_offsets = list_offsets_raw - list_offsets_raw[0]
        inner_offsets, keys, items = _map_parts(inner_map)
        map_rows = np.repeat(np.arange(len(column)), np.diff(list_offsets))
        entry_rows = np.repeat(map_rows, np.diff(inner_offsets))
        null_maps = inner_map.is_null()
    slots = _slot_ids(items, keys, unique)
    keep = slots >= 0

    def rebuild(new_values: pa.Array) -> pa.ChunkedArray:
        new_items = _take_masked(new_values, slots, items)
        if list_offsets is None:
            out = pa.MapArray.from_arrays(
                pa.array(inner_offsets, type=pa.int32()), keys, new_items, type=field_type, mask=column.is_null()
            )
        else:
            inner_type = field_type.value_type
            maps = pa.MapArray.from_arrays(
                pa.array(inner_offsets, type=pa.int32()), keys, new_items, type=inner_type, mask=null_maps
            )
            out = pa.ListArray.from_arrays(
                pa.array(list_offsets, type=pa.int32()), maps, type=field_type, mask=column.is_null()
            )
        return pa.chunked_array([out], type=field_type)

    return _Column(name, "map" if list_offsets is None else "list_map", slots[keep], entry_rows[keep], rebuild)


def create(ctx: ComponentContext, config: Config) -> PiiMasking:
    """Build the PII masking processor (loads recognizers and, if available, the NER model)."""
    return PiiMasking(ctx, config)
