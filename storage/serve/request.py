"""What one HTTP query request asks for: its options (settings, parameters, database, format, session,
compression) and its statement text, read from the URL and as little of the body as the statement needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from storage.serve.compression import DEFAULT_ZLIB_LEVEL, Readable, choose_coding
from storage.serve.config import Limits
from storage.serve.errors import (
    BAD_ARGUMENTS,
    INVALID_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    SYNTAX_ERROR,
    ServeError,
)
from storage.serve.statement import Incomplete, InsertData, first_word, split_insert

# URL parameters the HTTP layer consumes; every other parameter (except param_*) is a setting.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
    "quota_key", "user", "password", "buffer_size", "wait_end_of_query", "http_wait_end_of_query", "compress",
    "decompress", "client_protocol_version", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "enable_http_compression", "http_zlib_compression_level",
    "http_response_buffer_size", "http_native_compression_disable_checksumming_on_decompress",
    "add_http_cors_header", "stacktrace",
})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A streamed result is held back until this much of it is ready (ClickHouse's ``buffer_size``, 1 MiB by
# default), so a query that fails early still gets an error status instead of a 200 with partial rows.
DEFAULT_RESPONSE_BUFFER = 1 << 20
MAX_RESPONSE_BUFFER = 64 << 20


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
    buffer_bytes: int = DEFAULT_RESPONSE_BUFFER


def read_options(
    request: Request, query_id: str, limits: Limits, *, output_formats: frozenset[str], http_compression: bool
) -> Options:
    """The options of a request: settings, parameters, database, format, session and compression."""
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
    if fmt is not None and fmt not in output_formats:
        raise ServeError(73, f"Unknown output format {fmt}", text=f"Code: 73. DB::Exception: Unknown format {fmt}. "
                         "(UNKNOWN_FORMAT)")
    options.default_format = fmt
    options.session_id = params.get("session_id") or None
    options.session_check = params.get("session_check") in ("1", "true")
    options.session_timeout_s = float(limits.default_session_timeout_s)
    if params.get("session_timeout"):
        try:
            timeout = float(params["session_timeout"])
        except ValueError:
            raise ServeError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout {params['session_timeout']!r}") \
                from None
        if not 0 < timeout <= limits.max_session_timeout_s:
            raise ServeError(INVALID_SESSION_TIMEOUT, f"Session timeout must be between 1 and "
                             f"{limits.max_session_timeout_s} seconds (got {timeout:g})")
        options.session_timeout_s = timeout
    options.wait_end_of_query = (params.get("wait_end_of_query") or params.get("http_wait_end_of_query")) in (
        "1", "true")
    enabled = params.get("enable_http_compression")
    compress = http_compression if enabled is None else enabled not in ("", "0", "false")
    if compress:
        options.coding = choose_coding(headers.get("Accept-Encoding"))
    if params.get("buffer_size"):
        try:
            options.buffer_bytes = min(MAX_RESPONSE_BUFFER, max(0, int(params["buffer_size"])))
        except ValueError:
            raise ServeError(BAD_ARGUMENTS, f"Invalid buffer_size {params['buffer_size']!r}") from None
    level = params.get("http_zlib_compression_level")
    if level:
        try:
            options.zlib_level = min(9, max(1, int(level)))
        except ValueError:
            raise ServeError(BAD_ARGUMENTS, f"Invalid http_zlib_compression_level {level!r}") from None
    return options


def read_statement(request: Request, max_query_kb: int) -> tuple[bytes, InsertData | None, bytes]:
    """The statement text, the INSERT's data split (if it has inline data) and the data read so far.

    Like ClickHouse, the ``query`` parameter and the body are one text joined by a newline.
    Only as much of the body as the statement needs is read; an INSERT's data stays in the body.
    """
    query = request.params.get("query", "").encode("utf-8", "surrogateescape")
    limit = max_query_kb * 1024
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
            raise ServeError(QUERY_IS_TOO_LARGE, f"The statement is larger than {max_query_kb} KiB "
                             "(max_query_kb); only INSERT data may be larger")
    if not text.strip():
        raise ServeError(SYNTAX_ERROR, "Empty query")
    return text, None, b""
