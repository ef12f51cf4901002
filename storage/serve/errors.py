"""ClickHouse error codes as the HTTP interface reports them: status, ``X-ClickHouse-Exception-Code``
and a ``Code: N. DB::Exception: …`` body that clickhouse-connect and other clients parse.
"""

from __future__ import annotations

import re

# Codes this server raises or reacts to (numbers from ClickHouse's ErrorCodes.cpp, pinned by a test).
UNSUPPORTED_METHOD = 1
CANNOT_READ_ALL_DATA = 33
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
NETWORK_ERROR = 210
UNKNOWN_COMPRESSION_METHOD = 89
TIMEOUT_EXCEEDED = 159
READONLY = 164
REQUIRED_PASSWORD = 194
TOO_MANY_SIMULTANEOUS_QUERIES = 202
QUERY_IS_TOO_LARGE = 229
MEMORY_LIMIT_EXCEEDED = 241
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
QUERY_WAS_CANCELLED = 394
TOO_MANY_ROWS_OR_BYTES = 396
SETTING_CONSTRAINT_VIOLATION = 452
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516

NAMES: dict[int, str] = {
    UNSUPPORTED_METHOD: "UNSUPPORTED_METHOD",
    CANNOT_READ_ALL_DATA: "CANNOT_READ_ALL_DATA",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    NETWORK_ERROR: "NETWORK_ERROR",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD",
    TIMEOUT_EXCEEDED: "TIMEOUT_EXCEEDED",
    READONLY: "READONLY",
    REQUIRED_PASSWORD: "REQUIRED_PASSWORD",
    TOO_MANY_SIMULTANEOUS_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    MEMORY_LIMIT_EXCEEDED: "MEMORY_LIMIT_EXCEEDED",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    QUERY_WAS_CANCELLED: "QUERY_WAS_CANCELLED",
    TOO_MANY_ROWS_OR_BYTES: "TOO_MANY_ROWS_OR_BYTES",
    SETTING_CONSTRAINT_VIOLATION: "SETTING_CONSTRAINT_VIOLATION",
    ACCESS_DENIED: "ACCESS_DENIED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
}

# ClickHouse's exceptionCodeToHTTPStatus: every other code is 500.
_STATUS: dict[int, int] = {REQUIRED_PASSWORD: 401}
_STATUS.update(dict.fromkeys((192, 193, 497, 512, 516), 403))  # unknown user, wrong password, access denied …
_STATUS.update(dict.fromkeys(  # bad arguments, unparsable values, syntax and AST errors, type mismatches
    (6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321, 376, 427, 441, 675, 676), 400))
_STATUS.update(dict.fromkeys(  # unknown table, function, identifier, type, storage, database, setting, format …
    (46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511), 404))
_STATUS.update({229: 413, 48: 501, 209: 503, 76: 503, 381: 411, 159: 408, 439: 503, 779: 415})

_CODE_IN_TEXT = re.compile(r"Code:\s*(\d+)\.")


def http_status(code: int) -> int:
    """The HTTP status ClickHouse answers an exception with this code with."""
    return _STATUS.get(code, 500)


class ServeError(Exception):
    """A request failed with a ClickHouse error code; ``text`` is the body clients see."""

    def __init__(self, code: int, message: str, *, text: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        name = NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.text = text if text is not None else f"Code: {code}. DB::Exception: {message}. ({name})"

    @property
    def status(self) -> int:
        """The HTTP status for this error."""
        return http_status(self.code)

    def body(self) -> bytes:
        """The response body: the exception text and a newline, as ClickHouse writes it."""
        return self.text.rstrip("\n").encode("utf-8", "replace") + b"\n"


def engine_error(exc: BaseException) -> ServeError:
    """A ``ServeError`` from an exception the engine raised, keeping its code and text.

    chDB wraps the engine's message ("Streaming query failed: Code: 60. DB::Exception: …"); the
    wrapper is cut off so the body reads as ClickHouse's own.
    """
    message = str(exc).strip() or type(exc).__name__
    found = _CODE_IN_TEXT.search(message)
    if found is None:
        return ServeError(1002, message, text=f"Code: 1002. DB::Exception: {message}. (UNKNOWN_EXCEPTION)")
    return ServeError(int(found.group(1)), message, text=message[found.start():])
