"""The durable queue's view of its disk: free space, disk errors, and the reserve a full disk gives back.

SQLite needs room to delete (its write-ahead log grows before space is freed), so a queue that let
its disk fill could no longer forget what it delivered. The queue therefore refuses new batches
below a free-space watermark, and keeps a pre-allocated reserve file it releases when a delete or a
claim finds the disk full anyway.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from sovtel.component import Backpressure

# Without a configured watermark: this share of the filesystem, at most DEFAULT_MIN_FREE_CAP.
DEFAULT_MIN_FREE_SHARE = 0.05
DEFAULT_MIN_FREE_CAP = 1024**3

# errnos that mean "no room" (or a disk that cannot write) rather than a bug.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class QueueRefusal(Backpressure):
    """The durable queue cannot take a batch now (its disk is short or failing); retryable, with a reason."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def disk_free(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def disk_size(directory: Path) -> int:
    """Size in bytes of the filesystem of ``directory``."""
    st = os.statvfs(directory)
    return st.f_blocks * st.f_frsize


def default_min_free(directory: Path) -> int:
    """The watermark without configuration: 5% of the queue's filesystem, at most 1 GiB."""
    return min(DEFAULT_MIN_FREE_CAP, int(disk_size(directory) * DEFAULT_MIN_FREE_SHARE))


def is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full or cannot write (SQLITE_FULL / SQLITE_IOERR, ENOSPC, EIO…)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return int(code) & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
        return "disk" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS


class Reserve:
    """A file of ``size`` allocated bytes next to the queue; truncated to give its space back on a full disk."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.held = size <= 0

    def allocated(self) -> int:
        """Bytes the file holds on disk now."""
        try:
            return os.stat(self.path).st_blocks * 512
        except OSError:
            return 0

    def allocate(self) -> None:
        """Allocate the whole reserve (idempotent); raises OSError (ENOSPC…) and then holds nothing."""
        if self.size <= 0:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.release()  # a partial reserve would only hide free space
            raise
        self.held = True

    def release(self) -> None:
        """Give the space back to the filesystem; the (empty) file stays."""
        if self.size <= 0:
            return
        self.held = False
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path, 0)
