"""Resend deduplication: a bounded, time-windowed memory of what a pipeline already queued.

An OTLP client whose answer was lost sends the same request again. Spans are remembered by their
exact identity — trace id (16 bytes) and span id (8 bytes), decoded from hex into three 64-bit
lanes — so a resent span is recognised and dropped (counted ``duplicate``) instead of being
stored twice; a span is never mistaken for another (no hash decides alone). Log records and metric
data points have no identity: a whole request is remembered by a digest of its rows, with the
answer it got, and an identical request within the window gets the same answer without being
queued again. Memory is bounded by ``max_entries`` (32 bytes per span); see
docs/adr/0003-resend-dedup.md for the choice and its limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sovtel.queue import rows_token
from sovtel.records import Batch, Signal

DEFAULT_WINDOW_S = 300.0
DEFAULT_MAX_ENTRIES = 1_000_000
# The window ages out in this many slices: a key is kept at least window_s, at most 1.1 × window_s.
GENERATIONS = 10

Keys = npt.NDArray[np.uint64]  # shape (n, 3): trace id high, trace id low, span id
Mask = npt.NDArray[np.bool_]

# Hex digit → nibble; 255 marks a byte that is not a hex digit.
_HEX = np.full(256, 255, np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


class DedupConfig(BaseModel):
    """The ``dedup:`` section of a pipeline: how long and how much it remembers of what it queued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Drop resent spans and requests seen within the window.")
    window_s: float = Field(
        default=DEFAULT_WINDOW_S,
        gt=0,
        le=86_400,
        description="How long a queued span or request is remembered; cover the clients' retry time "
        "(the OpenTelemetry Collector retries for up to 300 s).",
    )
    max_entries: int = Field(
        default=DEFAULT_MAX_ENTRIES,
        ge=1_000,
        le=100_000_000,
        description="Spans (and requests) remembered at most, 32 bytes each; beyond it the oldest are forgotten early.",
    )


def dedup_config(pipeline_config: object) -> DedupConfig:
    """The ``dedup`` section a pipeline's configuration declares; the defaults without one."""
    section = getattr(pipeline_config, "dedup", None)
    return section if isinstance(section, DedupConfig) else DedupConfig()


def _hex_lanes(column: pa.ChunkedArray | pa.Array, width: int) -> tuple[Keys, Mask]:
    """``column`` (hex strings of ``width`` bytes) as (n, width/8) uint64 lanes, and which rows decoded."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    lanes = np.zeros((n, width // 8), np.uint64)
    ok = pc.fill_null(pc.equal(pc.binary_length(arr), 2 * width), False).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(ok)
    if len(rows) == 0:
        return lanes, ok
    # After the filter the strings sit back to back, 2 × width characters each.
    fixed = arr.filter(pa.array(ok)) if len(rows) < n else arr
    offsets = np.frombuffer(fixed.buffers()[1], np.int32, count=len(fixed) + 1, offset=fixed.offset * 4)
    chars = np.frombuffer(fixed.buffers()[2], np.uint8, count=2 * width * len(rows), offset=int(offsets[0]))
    nibbles = _HEX[chars].reshape(len(rows), 2 * width)
    valid = (nibbles != 255).all(axis=1)
    raw = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
    lanes[rows] = raw.view(">u8").astype(np.uint64)
    ok = ok.copy()
    ok[rows] = valid
    return lanes, ok


def span_keys(table: pa.Table) -> tuple[Keys, Mask]:
    """Each row's identity (trace id, span id as three uint64 lanes), and which rows have one.

    Rows whose ids are not 32 and 16 hex characters have no identity and are never deduplicated.
    """
    if "trace_id" not in table.column_names or "span_id" not in table.column_names:
        n = table.num_rows
        return np.zeros((n, 3), np.uint64), np.zeros(n, np.bool_)
    trace, t_ok = _hex_lanes(table.column("trace_id"), 16)
    span, s_ok = _hex_lanes(table.column("span_id"), 8)
    return np.hstack([trace, span]), t_ok & s_ok


def fingerprint(keys: Keys) -> npt.NDArray[np.uint64]:
    """A well-mixed 64-bit sort key per identity; equal keys have equal fingerprints (never the reverse alone)."""
    with np.errstate(over="ignore"):
        h = keys[:, 0] * np.uint64(0x9E3779B97F4A7C15)
        h ^= keys[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= keys[:, 2] * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


def first_occurrences(keys: Keys) -> Mask:
    """True for each row whose identity did not occur earlier in ``keys`` (repeats inside one batch)."""
    n = len(keys)
    if n < 2:
        return np.ones(n, np.bool_)
    fp = fingerprint(keys)
    order = np.argsort(fp, kind="stable")
    k = keys[order]
    repeat = np.zeros(n, np.bool_)
    repeat[1:] = (fp[order][1:] == fp[order][:-1]) & (k[1:] == k[:-1]).all(axis=1)
    # A run of equal keys sorted stably keeps its first row (in batch order) first.
    keep = np.ones(n, np.bool_)
    keep[order[repeat]] = False
    return keep


@dataclass
class _Run:
    """Keys sorted by fingerprint, searched with ``searchsorted``."""

    fp: npt.NDArray[np.uint64]
    keys: Keys

    def contains(self, fp: npt.NDArray[np.uint64], keys: Keys) -> Mask:
        """True where the (fingerprint-sorted) query's key is in this run; full keys confirm each match."""
        idx = np.minimum(np.searchsorted(self.fp, fp), len(self.fp) - 1)
        hit: Mask = self.fp[idx] == fp
        candidates = np.flatnonzero(hit)
        if len(candidates):
            hit[candidates] = (self.keys[idx[candidates]] == keys[candidates]).all(axis=1)
        return hit


@dataclass
class _Generation:
    """The keys queued during one slice of the window, as a few sorted runs (merged like an LSM tree)."""

    started: float
    runs: list[_Run] = field(default_factory=list)
    size: int = 0

    def add(self, fp: npt.NDArray[np.uint64], keys: Keys) -> None:
        order = np.argsort(fp)
        self.runs.append(_Run(fp[order], keys[order]))
        self.size += len(fp)
        # Merge while the newer run is at least half the older: O(log n) runs, each row merged O(log n) times.
        while len(self.runs) >= 2 and len(self.runs[-2].fp) <= 2 * len(self.runs[-1].fp):
            b, a = self.runs.pop(), self.runs.pop()
            merged_fp = np.concatenate([a.fp, b.fp])
            order = np.argsort(merged_fp, kind="stable")  # two sorted runs: timsort merges in linear time
            self.runs.append(_Run(merged_fp[order], np.concatenate([a.keys, b.keys])[order]))


@dataclass(frozen=True)
class Answer:
    """What a request got the first time: rows dropped (not stored) and why; replayed to a resend."""

    dropped: int
    reasons: Mapping[str, int]


class DedupWindow:
    """What one pipeline queued recently: span identities and request digests, bounded in time and entries.

    Not thread-safe: the pipeline calls it under the lock that also guards its enqueue, so checking,
    queueing and remembering are one step and two concurrent resends cannot both pass.
    """

    def __init__(self, config: DedupConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or DedupConfig()
        self._clock = clock
        self._slice_s = self.config.window_s / GENERATIONS
        self._generations: list[_Generation] = []
        self._requests: dict[str, tuple[float, Answer]] = {}
        self.evicted = 0  # entries forgotten before their window ended (max_entries reached)

    @property
    def entries(self) -> int:
        """Span identities and request digests remembered now."""
        return sum(g.size for g in self._generations) + len(self._requests)

    @property
    def nbytes(self) -> int:
        """Bytes the remembered span identities take (fingerprints and keys)."""
        return sum(r.fp.nbytes + r.keys.nbytes for g in self._generations for r in g.runs)

    def _expire(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._generations and self._generations[0].started + self._slice_s <= horizon:
            self._generations.pop(0)
        while self._requests:
            digest, (seen, _) = next(iter(self._requests.items()))
            if seen > horizon:
                break
            del self._requests[digest]

    def seen(self, keys: Keys) -> Mask:
        """True for each key queued within the window."""
        self._expire(self._clock())
        hit = np.zeros(len(keys), np.bool_)
        if len(keys) == 0 or not self._generations:
            return hit
        fp = fingerprint(keys)
        # Sorted needles let searchsorted walk each run forward instead of jumping around it.
        order = np.argsort(fp)
        fp, sorted_keys = fp[order], keys[order]
        found = np.zeros(len(keys), np.bool_)
        for g in self._generations:
            for run in g.runs:
                found |= run.contains(fp, sorted_keys)
        hit[order] = found
        return hit

    def remember(self, keys: Keys) -> None:
        """Remember ``keys`` as queued now; forgets the oldest slices first if ``max_entries`` is exceeded."""
        if len(keys) == 0:
            return
        now = self._clock()
        self._expire(now)
        # A slice is bounded in time and in entries, so the bound forgets a tenth of the window at a time.
        current = self._generations[-1] if self._generations else None
        if current is None or now - current.started >= self._slice_s or (
            current.size >= self.config.max_entries // GENERATIONS
        ):
            self._generations.append(_Generation(now))
        self._generations[-1].add(fingerprint(keys), np.ascontiguousarray(keys, np.uint64))
        self._bound()

    def _bound(self) -> None:
        # Forget the oldest first, span slices and request digests alike; the slice being filled goes last.
        while self.entries > self.config.max_entries:
            oldest_slice = self._generations[0].started if len(self._generations) > 1 else float("inf")
            oldest_request = next(iter(self._requests.values()))[0] if self._requests else float("inf")
            if oldest_request <= oldest_slice and self._requests:
                self._requests.pop(next(iter(self._requests)))
                self.evicted += 1
            elif len(self._generations) > 1:
                self.evicted += self._generations.pop(0).size
            else:
                # One slice alone over the bound: forget it whole rather than grow.
                self.evicted += self._generations.pop().size
                break

    def answer(self, digest: str) -> Answer | None:
        """The answer an identical request got within the window, if one was queued."""
        self._expire(self._clock())
        found = self._requests.get(digest)
        return found[1] if found is not None else None

    def remember_request(self, digest: str, answer: Answer) -> None:
        """Remember a queued request's digest and the answer it got."""
        now = self._clock()
        self._expire(now)
        self._requests.pop(digest, None)
        self._requests[digest] = (now, answer)
        self._bound()


def request_digest(batch: Batch) -> str | None:
    """A digest of a log or metric request's rows (identical requests, identical digests); None for spans."""
    if batch.signal is Signal.TRACES or batch.rows == 0:
        return None
    return rows_token(batch)
