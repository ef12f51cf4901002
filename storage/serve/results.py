"""How a query's answer and an INSERT's data travel: the reply contract, result formats and their content
types, results streamed block by block (ArrowStream blocks spliced into one stream), and the row and byte counts.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from storage.serve.compression import Readable
from storage.serve.engine import Connection
from storage.serve.errors import ServeError, engine_error
from storage.serve.policy import Statement
from storage.serve.request import Options
from storage.serve.statement import InsertData

log = logging.getLogger("sovtel.serve")

DEFAULT_FORMAT = "TabSeparated"
READ_PIECE = 1 << 20

# Formats whose per-block outputs concatenate into one valid result: streamed block by block.
STREAMABLE_FORMATS = frozenset({
    "Native", "RowBinary", "RowBinaryWithDefaults", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
    "JSONEachRow", "JSONLines", "JSONL", "NDJSON", "JSONCompactEachRow", "JSONStringsEachRow",
    "JSONCompactStringsEachRow", "LineAsString", "RawBLOB", "TSKV", "Null",
})
ARROW_STREAM = "ArrowStream"
_IPC_CONTINUATION = b"\xff\xff\xff\xff"
_IPC_END = _IPC_CONTINUATION + b"\x00\x00\x00\x00"


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


def insert_data(connection: Connection, insert: InsertData, data: bytes, body: Readable | None,
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


def send_result(
    connection: Connection,
    text: bytes,
    statement: Statement,
    options: Options,
    counters: Counters,
    headers: dict[str, str],
    reply: Reply,
    started: float,
) -> None:
    """Answer a statement that is not an INSERT: streamed when its format allows, else whole."""
    fmt = statement.output_format or options.default_format or DEFAULT_FORMAT
    if statement.has_result:
        headers["X-ClickHouse-Format"] = fmt
        headers["Content-Type"] = content_type(fmt)
    streamable = fmt in STREAMABLE_FORMATS or fmt == ARROW_STREAM
    answer = _Answer(connection, text, options, counters, headers, reply, started)
    if statement.streams_rows and streamable and not options.wait_end_of_query:
        _stream(answer, fmt)
        return
    _select_whole(answer, fmt if statement.has_result else DEFAULT_FORMAT)


@dataclass
class _Answer:
    """What answering one statement needs, whole or streamed."""

    connection: Connection
    text: bytes
    options: Options
    counters: Counters
    headers: dict[str, str]
    reply: Reply
    started: float

    def summarise(self) -> None:
        """Put the ``X-ClickHouse-Summary`` header, as the counters stand now, into the headers."""
        self.headers["X-ClickHouse-Summary"] = self.counters.summary(time.perf_counter() - self.started)


def _stream(answer: _Answer, fmt: str) -> None:
    """Send a SELECT's result block by block as the engine produces it.

    The first ``options.buffer_bytes`` of output are held back: a result that fits is sent whole (with
    its final summary), and a query that fails before the buffer fills gets an error status. Only a
    failure after that ends a 200 body with ClickHouse's tagged exception block.
    """
    options, counters, headers, reply = answer.options, answer.counters, answer.headers, answer.reply
    blocks = answer.connection.stream(answer.text, fmt, options.params)
    splice = _ArrowSplice() if fmt == ARROW_STREAM else None
    held: list[Any] = []  # the engine's chunks, kept alive while views of them wait in ``pending``
    pending: list[memoryview | bytes] = []
    size = 0
    for chunk in blocks:
        held.append(chunk)
        for piece in _pieces(counters, chunk, splice):
            pending.append(piece)
            size += len(piece)
        if size > options.buffer_bytes:
            break
    else:
        if not held and fmt == ARROW_STREAM:
            # An empty result still needs its schema, which only a whole run writes: run it again.
            _select_whole(answer, fmt)
            return
        if splice is not None:
            pending.append(splice.end())
            size += len(_IPC_END)
        counters.result_bytes = size
        answer.summarise()
        body = b"".join(pending)
        reply.send(headers, body, coding=options.coding if body else None, zlib_level=options.zlib_level)
        return
    answer.summarise()
    headers["X-ClickHouse-Exception-Tag"] = uuid.uuid4().hex
    reply.begin(headers, coding=options.coding, zlib_level=options.zlib_level)
    for piece in pending:
        counters.result_bytes += len(piece)
        reply.write(piece)
    pending.clear()
    held.clear()
    for chunk in blocks:
        for piece in _pieces(counters, chunk, splice):
            counters.result_bytes += len(piece)
            reply.write(piece)
    if splice is not None:
        reply.write(splice.end())
        counters.result_bytes += len(_IPC_END)
    reply.end()


def _pieces(counters: Counters, chunk: Any, splice: _ArrowSplice | None) -> tuple[memoryview | bytes, ...]:
    """The engine's ``chunk`` counted, as the pieces of output it adds (spliced for ArrowStream)."""
    _count(counters, chunk)
    payload = chunk.get_memview().view()
    return splice.add(payload) if splice is not None else (payload,)


def _select_whole(answer: _Answer, fmt: str) -> None:
    """Run the statement to completion, then answer: the status and the summary are final."""
    options, counters = answer.options, answer.counters
    result = answer.connection.query(answer.text, fmt, options.params)
    _count(counters, result)
    counters.written_rows, counters.written_bytes = int(result.rows_written()), int(result.bytes_written())
    payload: bytes | memoryview = result.get_memview().view() if result.size() else b""
    counters.result_bytes = len(payload)
    answer.summarise()
    answer.reply.send(answer.headers, payload, coding=options.coding if payload else None,
                      zlib_level=options.zlib_level)


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
