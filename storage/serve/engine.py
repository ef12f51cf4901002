"""The store's one chDB engine and its connections: a fresh connection per request, named sessions
with idle expiry, the guard against chDB returning a failed query's partial output later, and the
role profiles the engine enforces (ClickHouse settings profiles with constraints, from a users file
the engine loads at start).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from storage.serve.config import Role, RoleProfile
from storage.serve.errors import (
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    ServeError,
    engine_error,
)

log = logging.getLogger("sovtel.serve")

GUARD_ATTEMPTS = 3
# How long a request waits for its session while the same client's previous request finishes.
SESSION_LOCK_WAIT_S = 1.0


class EngineStartError(Exception):
    """The engine cannot open the store directory (most often: another process holds it)."""


class Connection:
    """One connection to the engine: its own settings, current database and temporary tables.

    Not safe for concurrent use; its owner (a request, or a session under its lock) serialises calls.
    Engine exceptions come out as ``ServeError`` with the engine's code and text.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.closed = False

    def query(self, sql: bytes | str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        """Run a statement to completion; returns chDB's result (``bytes()``, ``rows_read()`` …)."""
        try:
            return self._raw.query(sql, fmt, params=params or None)
        except Exception as exc:
            raise engine_error(exc) from exc

    def text(self, sql: bytes | str, params: dict[str, str] | None = None) -> str:
        """A statement's output as raw text (``TabSeparatedRaw``)."""
        return bytes(self.query(sql, "TabSeparatedRaw", params).bytes()).decode("utf-8", "replace")

    def stream(self, sql: bytes | str, fmt: str, params: dict[str, str] | None = None) -> Iterator[Any]:
        """Run a SELECT and yield its result block by block (each block encoded on its own)."""
        try:
            result = self._raw.send_query(sql, fmt, params=params or None)
        except Exception as exc:
            raise engine_error(exc) from exc
        try:
            while True:
                try:
                    chunk = result.fetch()
                except Exception as exc:
                    raise engine_error(exc) from exc
                if chunk is None:
                    return
                yield chunk
        finally:
            try:
                result.cancel()
            except Exception:  # cancelling a finished or failed stream is best effort
                log.debug("cancelling a stream failed", exc_info=True)

    def insert(self, head: bytes | str, fmt: str) -> Any:
        """Start a streaming INSERT of ``fmt`` data (``append`` / ``finish`` / ``cancel``)."""
        try:
            return self._raw.send_insert(head.decode("utf-8", "surrogateescape") if isinstance(head, bytes) else head,
                                         fmt)
        except Exception as exc:
            raise engine_error(exc) from exc

    def discard_stale_results(self) -> bool:
        """Run a query with a known answer until it comes back exactly; False if it never does.

        After a query fails part-way, chDB can hand its partial output to the next query on the
        same connection (design §8): every connection that saw an error goes through this before
        it is used again, and is closed if it stays stale.
        """
        for _ in range(GUARD_ATTEMPTS):
            nonce = secrets.randbelow(2**62)
            try:
                answer = bytes(self._raw.query(f"SELECT toUInt64({nonce})", "TabSeparated").bytes())
            except Exception:  # a stale result may not even decode: that is what is being flushed
                log.debug("stale-result check failed", exc_info=True)
                continue
            if answer.strip() == str(nonce).encode():
                return True
        return False

    def close(self) -> None:
        """Close the connection; idempotent."""
        if not self.closed:
            self.closed = True
            try:
                self._raw.close()
            except Exception:
                log.debug("closing an engine connection failed", exc_info=True)


class Engine:
    """The chDB engine on one store directory, owned by this process for its lifetime.

    With ``profiles``, the engine starts with a users file holding one settings profile per role that
    has constraints; ``profile_name`` gives its name, and a connection that ``SET profile``s it is held
    to those constraints by the engine itself (for ``SET``, ``SETTINGS`` clauses and URL settings alike):
    ClickHouse merges the constraints of every profile a connection selects, so selecting another profile
    later cannot drop them. The names carry a random part: a user cannot guess another role's profile.
    """

    def __init__(
        self, directory: Path, profiles: Mapping[Role, RoleProfile] | None = None, max_server_memory: int | None = None
    ) -> None:
        # Imported here: the CLI loads without paying for the engine.
        import chdb

        directory.mkdir(parents=True, exist_ok=True)
        # chDB compares paths literally; every handle must use the same spelling.
        self.path = os.path.realpath(directory)
        self._chdb = chdb
        self._config_dir: str | None = None
        self._profile_names: dict[Role, str] = {}
        target = self.path
        if profiles or max_server_memory:
            profiles = profiles or {}
            suffix = secrets.token_hex(8)
            self._profile_names = {role: f"sovtel_{role}_{suffix}" for role, profile in profiles.items()
                                   if profile.effective_constraints()}
            self._config_dir = tempfile.mkdtemp(prefix="sovtel-serve-engine-")
            target = f"{self.path}?config-file={self._write_config(profiles, max_server_memory)}"
        try:
            self._keepalive = chdb.connect(target)  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._remove_config()
            if _held_by_another_process(Path(self.path) / "status"):
                raise EngineStartError(f"cannot open the store {self.path}: another process is using it (chDB "
                                       "allows one process per directory; reach it through that process's "
                                       "sovtel serve)") from exc
            if target != self.path:
                raise EngineStartError(f"cannot open the store {self.path} with the role profiles (the engine's "
                                       f"reason is printed above; an unknown setting name in profiles?): {exc}") \
                    from exc
            raise EngineStartError(f"cannot open the store {self.path}: {exc}") from exc

    def profile_name(self, role: Role) -> str | None:
        """The engine's settings profile for ``role`` (None when the role has no constraints)."""
        return self._profile_names.get(role)

    def _write_config(self, profiles: Mapping[Role, RoleProfile], max_server_memory: int | None) -> str:
        """Write the engine's configuration (a users file with the role profiles); returns its path."""
        assert self._config_dir is not None
        users_path = Path(self._config_dir) / "users.xml"
        lines = ["<clickhouse>", "  <profiles>", "    <default/>"]
        for role, name in self._profile_names.items():
            lines += [f"    <{name}>", "      <constraints>"]
            for setting, constraint in profiles[role].effective_constraints().items():
                parts = [f"<min>{escape(str(constraint.min))}</min>" if constraint.min is not None else "",
                         f"<max>{escape(str(constraint.max))}</max>" if constraint.max is not None else "",
                         "<const/>" if constraint.const else ""]
                lines.append(f"        <{setting}>{''.join(parts)}</{setting}>")
            lines += ["      </constraints>", f"    </{name}>"]
        # The engine's one user, as chDB has it without a users file: no password, every grant.
        lines += ["  </profiles>", "  <users><default><no_password/><profile>default</profile>"
                  "<networks><ip>::1</ip><ip>127.0.0.1</ip></networks></default></users>", "</clickhouse>", ""]
        users_path.write_text("\n".join(lines), encoding="utf-8")
        config_path = Path(self._config_dir) / "config.xml"
        server_memory = (f"<max_server_memory_usage>{int(max_server_memory)}</max_server_memory_usage>"
                         if max_server_memory else "")
        config_path.write_text("<clickhouse><user_directories><users_xml><path>" + escape(str(users_path))
                               + "</path></users_xml></user_directories>" + server_memory + "</clickhouse>\n",
                               encoding="utf-8")
        return str(config_path)

    def _remove_config(self) -> None:
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
            self._config_dir = None

    def connect(self) -> Connection:
        """A new connection with default settings."""
        try:
            return Connection(self._chdb.connect(self.path))  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise engine_error(exc) from exc

    def close(self) -> None:
        """Close the engine's own handle; idempotent."""
        self._keepalive.close()
        self._remove_config()


def _held_by_another_process(status: Path) -> bool:
    """Whether another process holds the engine's lock on the store's ``status`` file."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@dataclass
class Session:
    """A named session (``session_id``): one connection, used by one request at a time."""

    user: str
    session_id: str
    connection: Connection
    timeout_s: float
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """Named sessions per (user, session_id), closed after ``timeout_s`` idle.

    A session whose connection could not be brought back after an error is dropped and
    remembered: the next request naming it gets SESSION_NOT_FOUND once, so the lost settings and
    temporary tables never go unnoticed.
    """

    def __init__(
        self,
        connect: Callable[[], Connection],
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._max = max_sessions
        self._clock = clock
        self._sessions: dict[tuple[str, str], Session] = {}
        self._lost: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def acquire(
        self,
        user: str,
        session_id: str,
        timeout_s: float,
        *,
        check: bool = False,
        prepare: Callable[[Connection], None] = lambda c: None,
    ) -> Session:
        """The session, created (and ``prepare``d) if new, locked for the caller until ``release``.

        Raises SESSION_IS_LOCKED if another request holds it and SESSION_NOT_FOUND if ``check``
        asks for an existing one (or it was dropped after an error).
        """
        key = (user, session_id)
        now = self._clock()
        with self._lock:
            self._expire_locked(now)
            session = self._sessions.get(key)
            if session is None:
                if self._lost.pop(key, None) is not None:
                    raise ServeError(SESSION_NOT_FOUND, f"Session {session_id} was closed after an engine error; "
                                     "its settings and temporary tables are gone")
                if check:
                    raise ServeError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                if len(self._sessions) >= self._max:
                    raise ServeError(TOO_MANY_SIMULTANEOUS_QUERIES, f"Too many sessions (at most {self._max})")
                connection = self._connect()
                try:
                    prepare(connection)
                except BaseException:
                    connection.close()
                    raise
                session = Session(user, session_id, connection, timeout_s, now)
                self._sessions[key] = session
            if session.lock.acquire(blocking=False):
                session.timeout_s = timeout_s
                session.last_used = now
                return session
        # The previous request of the same client may still be finishing (its response is sent
        # before its URL settings are undone): wait briefly, outside the pool lock, before calling
        # the session busy.
        if not session.lock.acquire(timeout=SESSION_LOCK_WAIT_S):
            raise ServeError(SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client")
        with self._lock:
            if self._sessions.get(key) is not session:
                session.lock.release()
                raise ServeError(SESSION_NOT_FOUND, f"Session {session_id} was closed while waiting for it")
            session.timeout_s = timeout_s
            session.last_used = self._clock()
        return session

    def release(self, session: Session, *, broken: bool = False) -> None:
        """Give the session back; ``broken`` drops it (its connection stayed stale after an error)."""
        session.last_used = self._clock()
        if broken:
            with self._lock:
                key = (session.user, session.session_id)
                if self._sessions.get(key) is session:
                    del self._sessions[key]
                    self._lost[key] = session.last_used
            session.connection.close()
            log.warning("session %s of %s dropped: its connection kept returning stale results",
                        session.session_id, session.user)
        session.lock.release()

    def expire(self) -> int:
        """Close sessions idle longer than their timeout; returns how many were closed."""
        with self._lock:
            return self._expire_locked(self._clock())

    def _expire_locked(self, now: float) -> int:
        expired = [k for k, s in self._sessions.items() if now - s.last_used > s.timeout_s and not s.lock.locked()]
        for key in expired:
            self._sessions.pop(key).connection.close()
        for key, when in list(self._lost.items()):
            if now - when > 3600:
                del self._lost[key]
        return len(expired)

    def close(self) -> None:
        """Close every session; idempotent."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.connection.close()
