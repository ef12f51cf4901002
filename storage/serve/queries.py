"""One HTTP query from request to response: authenticate, read and check the statement, run it on a
fresh connection or the client's session, stream the result or the INSERT data, and log it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from storage.serve.audit import AuditLog, AuditRecord, access_ids
from storage.serve.auth import Authenticator, NoAuthentication, User, request_credentials
from storage.serve.compression import DEFAULT_ZLIB_LEVEL, Readable, choose_coding
from storage.serve.config import Limits, Role
from storage.serve.engine import Connection, Engine, Sessions
from storage.serve.errors import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    BAD_ARGUMENTS,
    INVALID_SESSION_TIMEOUT,
    NETWORK_ERROR,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    READONLY,
    REQUIRED_PASSWORD,
    SYNTAX_ERROR,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    ServeError,
    engine_error,
)
from storage.serve.policy import ROLE_SETTINGS, Statement, authorize, classify
from storage.serve.statement import Incomplete, InsertData, first_word, split_insert, trailing_format

log = logging.getLogger("sovtel.serve")

DEFAULT_FORMAT = "TabSeparated"
READ_PIECE = 1 << 20

# URL parameters the HTTP layer consumes; every other parameter (except param_*) is a setting.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
    "quota_key", "user", "password", "buffer_size", "wait_end_of_query", "http_wait_end_of_query", "compress",
    "decompress", "client_protocol_version", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "enable_http_compression", "http_zlib_compression_level",
    "http_response_buffer_size", "http_native_compression_disable_checksumming_on_decompress",
    "add_http_cors_header", "stacktrace",
})
# Formats whose per-block outputs concatenate into one valid result: streamed block by block.
STREAMABLE_FORMATS = frozenset({
    "Native", "RowBinary", "RowBinaryWithDefaults", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
    "JSONEachRow", "JSONLines", "JSONL", "NDJSON", "JSONCompactEachRow", "JSONStringsEachRow",
    "JSONCompactStringsEachRow", "LineAsString", "RawBLOB", "TSKV", "Null",
})
ARROW_STREAM = "ArrowStream"
_IPC_CONTINUATION = b"\xff\xff\xff\xff"
_IPC_END = _IPC_CONTINUATION + b"\x00\x00\x00\x00"
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?:\s*\(version [^)]*\))?\.?\s*$")
_DENIED_CODES = frozenset({ACCESS_DENIED, READONLY, REQUIRED_PASSWORD, AUTHENTICATION_FAILED})


class Reply(Protocol):
    """Where a query's response goes (the HTTP handler implements it).

    ``send`` answers with a complete body after the query finished (so the status and summary are
    final); ``begin`` starts a streamed body that ``write`` adds to and ``end`` closes. ``abort``
    ends a begun stream with ClickHouse's tagged exception block; ``error`` answers with an error.
    """

    @property
    def begun(self) -> bool: ...

    def send(self, headers: dict[str, str], body: bytes | memoryview, *, coding: str | None, zlib_level: int) -> None:
        ...

    def begin(self, headers: dict[str, str], *, coding: str | None, zlib_level: int) -> None: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def end(self) -> None: ...

    def abort(self, error: ServeError) -> None: ...

    def error(self, error: ServeError, headers: dict[str, str]) -> None: ...


@dataclass
class Request:
    """An HTTP query request as the handler read it; ``body`` is the decoded body (None for GET)."""

    method: str
    client: str
    headers: Mapping[str, str]
    params: dict[str, str]
    body: Readable | None = None


@dataclass
class Options:
    """What a request asks for besides its statement."""

    query_id: str
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    default_format: str | None = None
    session_id: str | None = None
    session_timeout_s: float = 60.0
    session_check: bool = False
    wait_end_of_query: bool = False
    coding: str | None = None
    zlib_level: int = DEFAULT_ZLIB_LEVEL


@dataclass
class Counters:
    """Rows and bytes a query read, wrote and returned."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0

    def summary(self, elapsed_s: float) -> str:
        """The ``X-ClickHouse-Summary`` header value (numbers as strings, as ClickHouse sends them)."""
        return json.dumps({
            "read_rows": str(self.read_rows), "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows), "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows), "result_rows": str(self.result_rows),
            "result_bytes": str(self.result_bytes),
            "elapsed_ns": str(int(elapsed_s * 1e9)),
        }, separators=(",", ":"))


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


def content_type(fmt: str) -> str:
    """The ``Content-Type`` ClickHouse answers a format with."""
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "WithNames" in fmt else "absent")
    if fmt.startswith(("JSON", "PrettyJSON", "NDJSON")):
        return "application/json; charset=UTF-8"
    if fmt == "XML":
        return "application/xml; charset=UTF-8"
    if fmt.startswith(("Native", "RowBinary", "Arrow", "Parquet", "ORC", "Avro", "MsgPack", "Protobuf", "Npy",
                       "CapnProto", "BSON", "RawBLOB")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class QueryService:
    """Runs HTTP query requests against the engine; one instance serves every handler thread."""

    def __init__(
        self,
        engine: Engine,
        authenticator: Authenticator | NoAuthentication,
        audit: AuditLog,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.authenticator = authenticator
        self.audit = audit
        self.limits = limits
        self.sessions = Sessions(engine.connect, limits.max_sessions, clock)
        self._parsers: list[Connection] = []
        self._parsers_lock = threading.Lock()
        self._running = threading.BoundedSemaphore(limits.max_concurrent_queries)
        self._in_flight = 0
        self._idle = threading.Condition()
        with self._parser() as connection:
            self.facts = EngineFacts.read(connection)

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
            options = self._options(request, record.query_id)
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
                self._idle.notify_all()

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
        text, insert, data = self._read_statement(request)
        statement = self._parse(insert.statement if insert else text, options.params)
        record.kind, record.statement, record.access_ids = statement.kind, statement.normalized, list(
            statement.access_ids)
        authorize(user.role, statement, user=user.name, method=request.method,
                  input_format=insert.format if insert else None,
                  engine_table_functions=self.facts.table_functions)
        if not self._running.acquire(blocking=False):
            raise ServeError(TOO_MANY_SIMULTANEOUS_QUERIES,
                             f"Too many simultaneous queries (at most {self.limits.max_concurrent_queries})")
        try:
            with self._connection(user, request.method, options, statement) as connection:
                if insert is not None:
                    self._insert(connection, insert, data, request.body, counters)
                    headers["X-ClickHouse-Summary"] = counters.summary(time.perf_counter() - started)
                    reply.send(headers, b"", coding=None, zlib_level=options.zlib_level)
                else:
                    self._select(connection, text, statement, options, counters, headers, reply, started)
        finally:
            self._running.release()

    # ---- request options -----------------------------------------------------------------------

    def _options(self, request: Request, query_id: str) -> Options:
        params, headers = request.params, request.headers
        if params.get("compress") not in (None, "", "0") or params.get("decompress") not in (None, "", "0"):
            raise ServeError(NOT_IMPLEMENTED, "ClickHouse's internal compression (compress=1 / decompress=1) is not "
                             "supported; use HTTP compression (Content-Encoding / Accept-Encoding)")
        if params.get("role"):
            raise ServeError(BAD_ARGUMENTS, "SQL roles do not exist here: a user's role comes from the users file")
        options = Options(query_id=query_id)
        for key, value in params.items():
            if key.startswith("param_"):
                options.params[key[6:]] = value
            elif key not in TRANSPORT_PARAMS and key != "role":
                if not _SETTING_NAME.match(key):
                    raise ServeError(BAD_ARGUMENTS, f"Invalid setting name {key!r}")
                options.settings[key] = value
        options.database = params.get("database") or headers.get("X-ClickHouse-Database") or None
        fmt = params.get("default_format") or headers.get("X-ClickHouse-Format") or None
        if fmt is not None and fmt not in self.facts.output_formats:
            raise ServeError(73, f"Unknown output format {fmt}", text=f"Code: 73. DB::Exception: Unknown format {fmt}. "
                             "(UNKNOWN_FORMAT)")
        options.default_format = fmt
        options.session_id = params.get("session_id") or None
        options.session_check = params.get("session_check") in ("1", "true")
        options.session_timeout_s = float(self.limits.default_session_timeout_s)
        if params.get("session_timeout"):
            try:
                timeout = float(params["session_timeout"])
            except ValueError:
                raise ServeError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout {params['session_timeout']!r}") \
                    from None
            if not 0 < timeout <= self.limits.max_session_timeout_s:
                raise ServeError(INVALID_SESSION_TIMEOUT, f"Session timeout must be between 1 and "
                                 f"{self.limits.max_session_timeout_s} seconds (got {timeout:g})")
            options.session_timeout_s = timeout
        options.wait_end_of_query = (params.get("wait_end_of_query") or params.get("http_wait_end_of_query")) in (
            "1", "true")
        enabled = params.get("enable_http_compression")
        compress = self.facts.http_compression if enabled is None else enabled not in ("", "0", "false")
        if compress:
            options.coding = choose_coding(headers.get("Accept-Encoding"))
        level = params.get("http_zlib_compression_level")
        if level:
            try:
                options.zlib_level = min(9, max(1, int(level)))
            except ValueError:
                raise ServeError(BAD_ARGUMENTS, f"Invalid http_zlib_compression_level {level!r}") from None
        return options

    # ---- the statement -------------------------------------------------------------------------

    def _read_statement(self, request: Request) -> tuple[bytes, InsertData | None, bytes]:
        """The statement text, the INSERT's data split (if it has inline data) and the data read so far.

        Like ClickHouse, the ``query`` parameter and the body are one text joined by a newline.
        Only as much of the body as the statement needs is read; an INSERT's data stays in the body.
        """
        query = request.params.get("query", "").encode("utf-8", "surrogateescape")
        limit = self.limits.max_query_kb * 1024
        body = request.body
        prefix = bytearray()
        done = body is None
        insert: InsertData | None = None
        while True:
            if not done and body is not None:
                piece = body.read(64 * 1024)
                if piece:
                    prefix += piece
                else:
                    done = True
            text = query + b"\n" + bytes(prefix) if query and prefix else query or bytes(prefix)
            try:
                if first_word(text, done) == "INSERT":
                    insert = split_insert(text, done)
                    # VALUES up to the statement limit run as one statement: only then are the
                    # {name:Type} parameters in the values substituted. Larger VALUES stream.
                    values_fit = insert is not None and insert.format == "Values" and len(prefix) <= limit
                    if insert is not None and not values_fit:
                        return insert.statement, insert, text[insert.data_start:]
                if done:
                    break
            except Incomplete:
                pass
            if len(prefix) > limit:
                if insert is not None:
                    return insert.statement, insert, text[insert.data_start:]
                raise ServeError(QUERY_IS_TOO_LARGE, f"The statement is larger than {self.limits.max_query_kb} KiB "
                                 "(max_query_kb); only INSERT data may be larger")
        if not text.strip():
            raise ServeError(SYNTAX_ERROR, "Empty query")
        return text, None, b""

    def _parse(self, text: bytes, params: dict[str, str]) -> Statement:
        """Classify a statement with the engine's parser; a statement that does not parse is refused."""
        literal = sql_string(text)
        with self._parser() as connection:
            # formatQuery refuses multi-statements without running anything; only then may the
            # text follow EXPLAIN AST (which would run a second statement after a ';').
            normalized = connection.text(b"SELECT normalizeQuery(" + literal + b") AS q WHERE notEmpty("
                                         b"formatQuerySingleLine(" + literal + b")) FORMAT JSONEachRow")
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
                self._prepare(connection, user.role, readonly_request=method == "GET")
                self._apply(connection, options, statement, None)
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

    @staticmethod
    def _prepare(connection: Connection, role: Role, *, readonly_request: bool) -> None:
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

    # ---- running -------------------------------------------------------------------------------

    def _insert(self, connection: Connection, insert: InsertData, data: bytes, body: Readable | None,
                counters: Counters) -> None:
        """Stream an INSERT's data into the engine as it arrives; nothing is committed on failure."""
        inserter = connection.insert(insert.head, insert.format)
        finished = False
        try:
            if data:
                _append(inserter, data)
            while body is not None:
                piece = body.read(READ_PIECE)
                if not piece:
                    break
                _append(inserter, piece)
            finished = True
            try:
                result = inserter.finish()
            except Exception as exc:
                raise _insert_error(exc) from exc
        finally:
            if not finished:
                try:
                    inserter.cancel()
                except Exception:  # the insert is abandoned either way
                    log.debug("cancelling an insert failed", exc_info=True)
        counters.written_rows, counters.written_bytes = int(result.rows_written), int(result.bytes_written)

    def _select(
        self,
        connection: Connection,
        text: bytes,
        statement: Statement,
        options: Options,
        counters: Counters,
        headers: dict[str, str],
        reply: Reply,
        started: float,
    ) -> None:
        fmt = statement.output_format or options.default_format or DEFAULT_FORMAT
        if statement.has_result:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = content_type(fmt)
        streamable = fmt in STREAMABLE_FORMATS or fmt == ARROW_STREAM
        if statement.streams_rows and streamable and not options.wait_end_of_query:
            self._stream(connection, text, fmt, options, counters, headers, reply, started)
            return
        fmt = fmt if statement.has_result else DEFAULT_FORMAT
        self._select_whole(connection, text, fmt, options, counters, headers, reply, started)

    def _stream(
        self,
        connection: Connection,
        text: bytes,
        fmt: str,
        options: Options,
        counters: Counters,
        headers: dict[str, str],
        reply: Reply,
        started: float,
    ) -> None:
        """Send a SELECT's result block by block as the engine produces it."""
        blocks = connection.stream(text, fmt, options.params)
        first = next(blocks, None)  # errors before any output still get a proper status
        if first is None and fmt == ARROW_STREAM:
            # An empty result still needs its schema, which only a whole run writes: run it again.
            self._select_whole(connection, text, fmt, options, counters, headers, reply, started)
            return
        if first is None:
            headers["X-ClickHouse-Summary"] = counters.summary(time.perf_counter() - started)
            reply.send(headers, b"", coding=None, zlib_level=options.zlib_level)
            return
        headers["X-ClickHouse-Summary"] = counters.summary(time.perf_counter() - started)
        headers["X-ClickHouse-Exception-Tag"] = uuid.uuid4().hex
        reply.begin(headers, coding=options.coding, zlib_level=options.zlib_level)
        splice = _ArrowSplice() if fmt == ARROW_STREAM else None
        for chunk in _chain([first], blocks):
            _count(counters, chunk)
            payload = chunk.get_memview().view()
            for piece in (splice.add(payload) if splice is not None else (payload,)):
                counters.result_bytes += len(piece)
                reply.write(piece)
        if splice is not None:
            reply.write(splice.end())
            counters.result_bytes += len(_IPC_END)
        reply.end()

    def _select_whole(
        self,
        connection: Connection,
        text: bytes,
        fmt: str,
        options: Options,
        counters: Counters,
        headers: dict[str, str],
        reply: Reply,
        started: float,
    ) -> None:
        """Run the statement to completion, then answer: the status and the summary are final."""
        result = connection.query(text, fmt, options.params)
        _count(counters, result)
        counters.written_rows, counters.written_bytes = int(result.rows_written()), int(result.bytes_written())
        payload: bytes | memoryview = result.get_memview().view() if result.size() else b""
        counters.result_bytes = len(payload)
        headers["X-ClickHouse-Summary"] = counters.summary(time.perf_counter() - started)
        reply.send(headers, payload, coding=options.coding if payload else None, zlib_level=options.zlib_level)


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


def _count(counters: Counters, result: Any) -> None:
    # chDB's rows_read() counts the result's rows; what came from storage is storage_rows_read().
    counters.read_rows += int(result.storage_rows_read())
    counters.read_bytes += int(result.storage_bytes_read())
    counters.result_rows += int(result.rows_read())


def _append(inserter: Any, data: bytes) -> None:
    try:
        inserter.append(data)
    except Exception as exc:
        raise _insert_error(exc) from exc


def _insert_error(exc: BaseException) -> ServeError:
    return engine_error(exc)


class _ArrowSplice:
    """Joins the engine's per-block ArrowStream outputs into one stream without re-encoding.

    Each block comes as a whole IPC stream (schema message, batches, end marker): the first
    block's schema is kept, later identical schemas and every end marker are cut, and one end
    marker closes the stream. Blocks with a different schema cannot be joined and fail the query.
    """

    def __init__(self) -> None:
        self._schema: bytes | None = None

    def add(self, block: memoryview) -> tuple[memoryview, ...]:
        """The bytes of ``block`` that belong in the joined stream."""
        if len(block) < 16 or block[:4] != _IPC_CONTINUATION or block[-8:] != _IPC_END:
            raise ServeError(1002, "the engine's ArrowStream output has an unexpected layout")
        schema_end = 8 + int.from_bytes(block[4:8], "little")
        schema = bytes(block[:schema_end])
        if self._schema is None:
            self._schema = schema
            return (block[:-8],)
        if schema != self._schema:
            raise ServeError(1002, "the engine's ArrowStream blocks have different schemas")
        return (block[schema_end:-8],)

    def end(self) -> bytes:
        """The end-of-stream marker."""
        return _IPC_END
