"""Bytes in flight: how many request bytes the receiver decodes at once, and giving memory back after bursts.

Decoding a request costs a multiple of its size in transient memory, so the receiver bounds the
sum of the sizes of the requests being read and decoded (both transports share one budget). A
request that would go over it is refused as retryable (HTTP 429 / gRPC ``RESOURCE_EXHAUSTED``)
instead of queueing memory; a request alone is always admitted, so one request of the largest
allowed size never starves.

When a burst ends (nothing in flight any more after enough bytes were decoded) the allocators are
asked to return their free pages to the system: Arrow's memory pool, and glibc's heap through
``malloc_trim``. Both are guarded, so on another C library the trim is simply skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

import pyarrow as pa

log = logging.getLogger("sovtel.collectors.otlp")

# Trim only after a burst of at least this many bytes, and at most once per interval: a trim walks
# the heap, which is cheap once per burst and wasteful after every small request.
TRIM_AFTER_BYTES = 8 * 1024 * 1024
TRIM_INTERVAL_S = 1.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS, Windows)."""
    try:
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_MALLOC_TRIM = _load_malloc_trim()


def release_memory() -> None:
    """Return free memory of Arrow's pool and of the C heap to the operating system; never raises."""
    try:
        pa.default_memory_pool().release_unused()
    except Exception:  # an older or exotic pool without release support
        log.debug("arrow memory pool could not release memory", exc_info=True)
    if _MALLOC_TRIM is not None:
        with contextlib.suppress(Exception):
            _MALLOC_TRIM(0)


class Reservation:
    """Bytes one request holds in the budget; ``release`` is idempotent."""

    def __init__(self, budget: InflightBudget, held: int) -> None:
        self._budget = budget
        self.held = held

    def grow_to(self, total: int) -> bool:
        """Hold ``total`` bytes instead (e.g. the body after decompression); False if that does not fit."""
        if total <= self.held:
            return True
        if not self._budget._grow(self, total - self.held):
            return False
        self.held = total
        return True

    def release(self) -> None:
        """Give the bytes back."""
        held, self.held = self.held, 0
        if held:
            self._budget._release(held)


class InflightBudget:
    """A bound on the bytes of requests being read and decoded at once; thread-safe."""

    def __init__(self, limit: int, trim: Callable[[], None] | None = release_memory) -> None:
        if limit <= 0:
            raise ValueError("the in-flight byte limit must be positive")
        self.limit = limit
        self._used = 0
        self._peak = 0
        self._since_trim = 0
        self._lock = threading.Lock()
        self._trim = trim
        self._trimming = False
        self._trim_again = False
        self._last_trim = 0.0
        self.trims = 0

    @property
    def used(self) -> int:
        """Bytes held now."""
        with self._lock:
            return self._used

    @property
    def peak(self) -> int:
        """The most bytes ever held at once."""
        with self._lock:
            return self._peak

    def try_reserve(self, size: int) -> Reservation | None:
        """Hold ``size`` bytes for one request, or None if that would exceed the limit (retry later)."""
        size = max(size, 0)
        with self._lock:
            if self._used and self._used + size > self.limit:
                return None
            self._take(size)
        return Reservation(self, size)

    def _take(self, size: int) -> None:
        self._used += size
        self._since_trim += size
        self._peak = max(self._peak, self._used)

    def _grow(self, reservation: Reservation, extra: int) -> bool:
        with self._lock:
            alone = self._used == reservation.held
            if not alone and self._used + extra > self.limit:
                return False
            self._take(extra)
            return True

    def _release(self, size: int) -> None:
        with self._lock:
            self._used -= size
            due = self._trim is not None and self._used == 0 and self._since_trim >= TRIM_AFTER_BYTES
            if not due:
                return
            if self._trimming:
                self._trim_again = True
                return
            self._trimming = True
        threading.Thread(target=self._trim_loop, name="otlp-memory-trim", daemon=True).start()

    def _trim_loop(self) -> None:
        """Trim once the burst is over, at most once per TRIM_INTERVAL_S; again if another burst ended meanwhile."""
        while True:
            wait = self._last_trim + TRIM_INTERVAL_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._lock:
                self._since_trim = 0
                self._trim_again = False
            if self._trim is not None:
                self._trim()
            self._last_trim = time.monotonic()
            with self._lock:
                self.trims += 1
                if not self._trim_again:
                    self._trimming = False
                    return
