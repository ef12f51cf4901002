"""One HTTP query from request to response: authenticate, read and check the statement, run it on a
fresh connection or the client's session, stream the result or the INSERT data, and log it.

Reading the request is in ``storage.serve.request``, sending the answer in ``storage.serve.results``;
this module holds the service that ties them together, the statement check and the connections.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from storage.serve.audit import AuditLog, AuditRecord, access_ids
from storage.serve.auth import Authenticator, NoAuthentication, User, request_credentials
from storage.serve.config import Limits, Profiles, Role
from storage.serve.engine import Connection, Engine, Sessions
from storage.serve.errors import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    MEMORY_LIMIT_EXCEEDED,
    NETWORK_ERROR,
    READONLY,
    REQUIRED_PASSWORD,
    SYNTAX_ERROR,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    ServeError,
)
from storage.serve.policy import ROLE_SETTINGS, Statement, authorize, classify
from storage.serve.request import Options, Request, read_options, read_statement
from storage.serve.results import Counters, Reply, insert_data, send_result
from storage.serve.statement import trailing_format

# Request and Reply are part of this module's interface: the HTTP handler builds one and implements the other.
__all__ = ["EngineFacts", "QueryService", "Reply", "Request", "sql_identifier", "sql_string"]

log = logging.getLogger("sovtel.serve")

_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?:\s*\(version [^)]*\))?\.?\s*$")
_DENIED_CODES = frozenset({ACCESS_DENIED, READONLY, REQUIRED_PASSWORD, AUTHENTICATION_FAILED})
# A statement that selects a settings profile (SET profile = …, SETTINGS profile = …), in normalized text.
_SELECTS_PROFILE = re.compile(r"(?is)(?:^\s*SET\b|\bSETTINGS\b).*\bprofile\s*=")
# How much of the user's statement a syntax error quotes.
QUOTED_STATEMENT_CHARS = 300


@dataclass(frozen=True)
class EngineFacts:
    """What the engine supports, read once at start-up."""

    timezone: str
    output_formats: frozenset[str]
    input_formats: frozenset[str]
    table_functions: frozenset[str]
    http_compression: bool

    @classmethod
    def read(cls, connection: Connection) -> EngineFacts:
        """Ask the engine."""
        formats = [line.split("\t") for line in connection.text(
            "SELECT name, is_input, is_output FROM system.formats").splitlines()]
        enabled = connection.text("SELECT value FROM system.settings WHERE name = 'enable_http_compression'")
        return cls(
            timezone=connection.text("SELECT timezone()").strip(),
            output_formats=frozenset(n for n, _, out in formats if out == "1"),
            input_formats=frozenset(n for n, inp, _ in formats if inp == "1"),
            table_functions=frozenset(connection.text("SELECT name FROM system.table_functions").split()),
            http_compression=enabled.strip() not in ("", "0"),
        )


def sql_string(value: bytes) -> bytes:
    """A ClickHouse string literal holding ``value`` exactly."""
    escaped = value.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\0", b"\\0")
    return b"'" + escaped + b"'"


def sql_identifier(name: str) -> str:
    """A back-quoted identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class QueryService:
    """Runs HTTP query requests against the engine; one instance serves every handler thread."""

    def __init__(
        self,
        engine: Engine,
        authenticator: Authenticator | NoAuthentication,
        audit: AuditLog,
        limits: Limits,
        profiles: Profiles | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.authenticator = authenticator
        self.audit = audit
        self.limits = limits
        self.profiles = profiles if profiles is not None else Profiles()
        self._role_running = {
            role: (threading.BoundedSemaphore(n), n, self.profiles.of(role).queue_max_wait_ms / 1000) for role in Role
            if (n := self.profiles.of(role).max_concurrent_queries) is not None
        }
        self.sessions = Sessions(engine.connect, limits.max_sessions, clock)
        self._parsers: list[Connection] = []
        self._parsers_lock = threading.Lock()
        self._running = threading.BoundedSemaphore(limits.max_concurrent_queries)
        self._in_flight = 0
        self._ran_since_purge = False
        self._idle = threading.Condition()
        with self._parser() as connection:
            self.facts = EngineFacts.read(connection)

    def check_profiles(self) -> None:
        """Start one connection per role, so a profile the engine rejects fails at start-up, not per query."""
        for role in Role:
            connection = self.engine.connect()
            try:
                self._prepare(connection, role, readonly_request=False)
            except ServeError as exc:
                raise ServeError(exc.code, f"profiles.{role}: {exc.text}", text=f"profiles.{role}: {exc.text}") \
                    from exc
            finally:
                connection.close()

    def release_memory(self, *, force: bool = False) -> bool:
        """Hand the engine allocator's freed pages back to the system (``SYSTEM JEMALLOC PURGE``).

        The allocator keeps what a large query freed; without this a refused memory hog would leave the
        service's RSS at its peak. Runs when forced (after MEMORY_LIMIT_EXCEEDED) or when queries ran since
        the last purge and none is running now. Returns whether it purged.
        """
        with self._idle:
            if not force and (self._in_flight or not self._ran_since_purge):
                return False
            self._ran_since_purge = False
        try:
            with self._parser() as connection:
                connection.query("SYSTEM JEMALLOC PURGE")
        except ServeError as exc:  # engines built without jemalloc have nothing to purge
            log.debug("purging the allocator failed: %s", exc)
            return False
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is being handled (at most ``timeout_s``); False if some still are."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def close(self) -> None:
        """Close sessions and parser connections; idempotent."""
        self.sessions.close()
        with self._parsers_lock:
            parsers, self._parsers = self._parsers, []
        for connection in parsers:
            connection.close()

    # ---- one request ---------------------------------------------------------------------------

    def handle(self, request: Request, reply: Reply) -> None:
        """Answer one query request through ``reply``; never raises for a bad request."""
        started = time.perf_counter()
        record = AuditRecord(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            query_id=request.params.get("query_id") or str(uuid.uuid4()),
            user=None, role=None, client=request.client, method=request.method,
            session_id=request.params.get("session_id") or None,
        )
        counters = Counters()
        headers = {"X-ClickHouse-Query-Id": record.query_id, "X-ClickHouse-Timezone": self.facts.timezone}
        with self._idle:
            self._in_flight += 1
        try:
            user = self.authenticator.authenticate(request_credentials(request.headers, request.params))
            record.user, record.role = user.name, str(user.role)
            options = read_options(request, record.query_id, self.limits, output_formats=self.facts.output_formats,
                                   http_compression=self.facts.http_compression)
            self._run(request, user, options, record, counters, headers, reply, started)
        except ServeError as exc:
            self._fail(exc, record, headers, reply)
        except OSError:  # the client went away while the response was being written
            record.outcome, record.code, record.error = "error", NETWORK_ERROR, "NETWORK_ERROR"
            raise
        except Exception as exc:  # a bug must cost one request, never the server
            log.exception("query %s failed unexpectedly", record.query_id)
            self._fail(ServeError(1002, f"internal error in sovtel serve: {type(exc).__name__}: {exc}"),
                       record, headers, reply)
        finally:
            record.read_rows, record.read_bytes = counters.read_rows, counters.read_bytes
            record.written_rows, record.written_bytes = counters.written_rows, counters.written_bytes
            record.result_rows, record.result_bytes = counters.result_rows, counters.result_bytes
            record.elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            self.audit.write(record)
            with self._idle:
                self._in_flight -= 1
                self._ran_since_purge = True
                self._idle.notify_all()
            if record.code == MEMORY_LIMIT_EXCEEDED:
                self.release_memory(force=True)

    def _fail(self, exc: ServeError, record: AuditRecord, headers: dict[str, str], reply: Reply) -> None:
        record.outcome = "denied" if exc.code in _DENIED_CODES else "error"
        # Only the error's name: engine messages may quote values from the query or its data.
        named = _ERROR_NAME.search(exc.text)
        record.code, record.error = exc.code, named.group(1) if named else "UNKNOWN_EXCEPTION"
        if reply.begun:
            reply.abort(exc)
        else:
            reply.error(exc, headers)

    def _run(
        self,
        request: Request,
        user: User,
        options: Options,
        record: AuditRecord,
        counters: Counters,
        headers: dict[str, str],
        reply: Reply,
        started: float,
    ) -> None:
        text, insert, data = read_statement(request, self.limits.max_query_kb)
        statement = self._parse(insert.statement if insert else text, options.params)
        record.kind, record.statement, record.access_ids = statement.kind, statement.normalized, list(
            statement.access_ids)
        authorize(user.role, statement, user=user.name, method=request.method,
                  input_format=insert.format if insert else None,
                  engine_table_functions=self.facts.table_functions)
        if user.role != Role.ADMIN and _SELECTS_PROFILE.search(statement.normalized):
            # The engine keeps a role's constraints whatever profile is selected later; refusing the
            # switch as well keeps the profile names out of reach.
            raise ServeError(ACCESS_DENIED, f"{user.name}: Not enough privileges. Settings profiles are chosen by "
                             "the user's role")
        role_slots = self._role_running.get(user.role)
        # As ClickHouse's queue_max_wait_ms: a burst (a dashboard's panels) waits briefly for a slot.
        if role_slots is not None and not role_slots[0].acquire(timeout=role_slots[2]):
            raise ServeError(TOO_MANY_SIMULTANEOUS_QUERIES, f"Too many simultaneous queries for role {user.role} "
                             f"(user {user.name}). Maximum: {role_slots[1]}")
        if not self._running.acquire(blocking=False):
            if role_slots is not None:
                role_slots[0].release()
            raise ServeError(TOO_MANY_SIMULTANEOUS_QUERIES,
                             f"Too many simultaneous queries. Maximum: {self.limits.max_concurrent_queries}")
        try:
            with self._connection(user, request.method, options, statement) as connection:
                if insert is not None:
                    insert_data(connection, insert, data, request.body, counters)
                    headers["X-ClickHouse-Summary"] = counters.summary(time.perf_counter() - started)
                    reply.send(headers, b"", coding=None, zlib_level=options.zlib_level)
                else:
                    send_result(connection, text, statement, options, counters, headers, reply, started)
        finally:
            if role_slots is not None:
                role_slots[0].release()
            self._running.release()

    # ---- request options -----------------------------------------------------------------------

    # ---- the statement -------------------------------------------------------------------------

    def _parse(self, text: bytes, params: dict[str, str]) -> Statement:
        """Classify a statement with the engine's parser; a statement that does not parse is refused."""
        literal = sql_string(text)
        wrapper = (b"SELECT normalizeQuery(" + literal + b") AS q WHERE notEmpty(formatQuerySingleLine(" + literal
                   + b"))")
        with self._parser() as connection:
            # formatQuery refuses multi-statements without running anything; only then may the
            # text follow EXPLAIN AST (which would run a second statement after a ';').
            try:
                normalized = connection.text(wrapper + b" FORMAT JSONEachRow")
            except ServeError as exc:
                raise _about_statement(exc, wrapper, text) from exc
            tree = connection.text(b"EXPLAIN AST " + text, params)
        statement = classify(tree, trailing_format(text))
        shape = json.loads(normalized)["q"] if normalized.strip() else ""
        return replace(statement, normalized=shape,
                       access_ids=tuple(access_ids(text.decode("utf-8", "replace"))))

    @contextmanager
    def _parser(self) -> Iterator[Connection]:
        """A connection used only to parse (never runs a user's statement)."""
        with self._parsers_lock:
            connection = self._parsers.pop() if self._parsers else None
        if connection is None:
            connection = self.engine.connect()
        healthy = True
        try:
            yield connection
        except BaseException:
            healthy = connection.discard_stale_results()
            raise
        finally:
            if healthy:
                with self._parsers_lock:
                    self._parsers.append(connection)
            else:
                connection.close()

    # ---- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self, user: User, method: str, options: Options, statement: Statement) -> Iterator[Connection]:
        """The connection the statement runs on, with the request's database and settings applied.

        Without a session: a fresh connection, closed afterwards (nothing can leak to the next
        request). With one: the session's connection; the request's database and settings are
        undone afterwards, and after any error the stale-result guard runs before it is used again.
        """
        if options.session_id is None:
            connection = self.engine.connect()
            try:
                early = options.settings if user.role == Role.READER else {}
                self._prepare(connection, user.role, readonly_request=method == "GET", url_settings=early)
                self._apply(connection, replace(options, settings={}) if early else options, statement, None)
                yield connection
            finally:
                connection.close()
            return
        session = self.sessions.acquire(
            user.name, options.session_id, options.session_timeout_s, check=options.session_check,
            prepare=lambda c: self._prepare(c, user.role, readonly_request=False),
        )
        connection = session.connection
        undo: list[Callable[[], None]] = []
        broken = False
        try:
            self._apply(connection, options, statement, undo)
            yield connection
        except BaseException:
            broken = not connection.discard_stale_results()
            raise
        finally:
            if not broken:
                try:
                    for step in reversed(undo):
                        step()
                except ServeError:
                    # The session's state is unknown now: drop it rather than let it surprise the client.
                    broken = True
            self.sessions.release(session, broken=broken)

    def _prepare(
        self, connection: Connection, role: Role, *, readonly_request: bool, url_settings: dict[str, str] | None = None
    ) -> None:
        """Start a connection as ``role``: its engine profile (constraints), its settings, then the role's mode.

        A reader's connection is read-only (``readonly = 1``), which forbids changing any setting; as with
        ClickHouse's ``changeable_in_readonly``, a reader's URL settings that its profile constrains are
        applied just before, so the engine checks them against the constraints (452 beyond them).
        """
        profile = self.profiles.of(role)
        name = self.engine.profile_name(role)
        if name is not None:
            connection.query(b"SET profile = " + sql_string(name.encode()))
        if profile.settings:
            connection.query(b"SET " + b", ".join(_assignment(k, v) for k, v in profile.settings.items()))
        if url_settings:
            changeable = profile.effective_constraints()
            for key in url_settings:
                if key not in changeable or changeable[key].const:
                    raise ServeError(READONLY, f"Cannot modify '{key}' setting in readonly mode")
            connection.query(b"SET " + b", ".join(_assignment(k, v) for k, v in url_settings.items()))
        for statement in ROLE_SETTINGS[role]:
            connection.query(statement)
        if readonly_request and role != Role.READER:
            connection.query("SET readonly = 2")

    def _apply(
        self, connection: Connection, options: Options, statement: Statement, undo: list[Callable[[], None]] | None
    ) -> None:
        """Apply the request's database and settings; on a session, ``undo`` collects what reverts them.

        ClickHouse applies URL parameters to the one query, never to the session. After a SET
        statement, settings the statement itself changed stay as the client set them.
        """
        if options.database:
            if undo is not None and statement.kind != "use":
                previous = b"USE " + sql_identifier(connection.text("SELECT currentDatabase()").strip()).encode()
                undo.append(lambda: connection.query(previous))
            connection.query(b"USE " + sql_identifier(options.database).encode("utf-8", "surrogateescape"))
        names = list(options.settings)
        if not names:
            return
        before = self._settings(connection, names) if undo is not None else {}
        assignments = (k.encode() + b" = " + sql_string(v.encode("utf-8", "surrogateescape"))
                       for k, v in options.settings.items())
        connection.query(b"SET " + b", ".join(assignments))
        if undo is None:
            return
        applied = self._settings(connection, names) if statement.kind == "set" else {}

        def reset() -> None:
            keep: set[str] = set()
            if applied:
                now = self._settings(connection, names)
                keep = {k for k in names if now.get(k) != applied.get(k)}
            resets = [k.encode() + b" = " + (sql_string(v.encode()) if changed else b"DEFAULT")
                      for k, (v, changed) in before.items() if k not in keep]
            if resets:
                connection.query(b"SET " + b", ".join(resets))

        undo.append(reset)

    @staticmethod
    def _settings(connection: Connection, names: list[str]) -> dict[str, tuple[str, bool]]:
        listed = ", ".join(sql_string(n.encode()).decode() for n in names)
        rows = connection.text(f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed}) "
                               "FORMAT JSONEachRow")
        found = {}
        for line in rows.splitlines():
            row = json.loads(line)
            found[row["name"]] = (row["value"], bool(row["changed"]))
        return found


def _assignment(name: str, value: object) -> bytes:
    """``name = value`` for a SET statement (numbers as they are, anything else as a string literal)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{name} = {value}".encode()
    return name.encode() + b" = " + sql_string(str(value).encode("utf-8", "surrogateescape"))


def _about_statement(error: ServeError, wrapper: bytes, text: bytes) -> ServeError:
    """A parse error of the service's own parsing query, told about the user's statement instead.

    The engine's positions already count in the user's text (it is parsed as a string argument);
    only the scope it names is the wrapper, which is replaced by (the start of) the user's statement.
    """
    if error.code != SYNTAX_ERROR:
        return error
    scope = ": In scope " + wrapper.decode("utf-8", "replace")
    quoted = " ".join(text.decode("utf-8", "replace").split())
    if len(quoted) > QUOTED_STATEMENT_CHARS:
        quoted = quoted[:QUOTED_STATEMENT_CHARS] + "…"
    message = error.text
    at = message.find(scope)
    if at < 0:
        at = message.find(": In scope SELECT normalizeQuery(")
    if at < 0:
        return error
    end = message.rfind(". (SYNTAX_ERROR)")
    tail = message[end:] if end > at else ". (SYNTAX_ERROR)"
    return ServeError(SYNTAX_ERROR, "", text=message[:at] + ": In query: " + quoted + tail)
