"""The query log of ``sovtel serve``: one JSON line per request in ``<store>/sovtel-audit/queries.jsonl``,
appended and never rewritten, for the audit job. Statements are logged with their literals replaced
(``normalizeQuery``) so the log itself holds no personal data.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AUDIT_DIR = "sovtel-audit"
AUDIT_FILE = "queries.jsonl"
MAX_STATEMENT_CHARS = 2000

# The tag retention.ledger.record_query_access puts in front of a read (kept in sync by a test).
ACCESS_TAG = re.compile(r"sovtel-access:([0-9a-f]{16})")


def audit_path(store_dir: Path) -> Path:
    """Where the query log of the store in ``store_dir`` is."""
    return store_dir / AUDIT_DIR / AUDIT_FILE


@dataclass
class AuditRecord:
    """One request as the audit log records it.

    ``outcome`` is ``ok``, ``error`` (the engine or the request failed) or ``denied`` (authentication
    or the role's policy refused it); ``code`` and ``error`` are the ClickHouse error code and name
    of a failure (never its message, which may quote the query's values).
    """

    time: str
    query_id: str
    user: str | None
    role: str | None
    client: str
    method: str
    session_id: str | None = None
    kind: str | None = None
    statement: str | None = None
    access_ids: list[str] = field(default_factory=list)
    outcome: str = "ok"
    code: int | None = None
    error: str | None = None
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_ms: float = 0.0

    def as_json(self) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = asdict(self)
        if data["statement"] and len(data["statement"]) > MAX_STATEMENT_CHARS:
            data["statement"] = data["statement"][:MAX_STATEMENT_CHARS] + "…"
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class AuditLog:
    """Appends records to the log file; thread-safe; each line is written with one ``write``.

    The file is opened with O_APPEND, so concurrent writers (and a rotated file) never interleave
    inside a line. Records are flushed to the OS as they are written and fsynced on ``close``.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()

    def write(self, record: AuditRecord) -> None:
        """Append one record."""
        line = (record.as_json() + "\n").encode("utf-8")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        """Flush to disk and close; idempotent."""
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = -1


def access_ids(text: str) -> list[str]:
    """The ledger access ids tagged into a statement's text."""
    return ACCESS_TAG.findall(text)
