"""The HTTP side of ``sovtel serve``: a threaded HTTP/1.1 server speaking ClickHouse's interface
(``/``, ``/ping``), reading bounded, de-chunked, decompressed bodies and writing (compressed,
chunked or buffered) responses for ``QueryService``.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import io
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from storage.serve.compression import DECODE_ERRORS, Encoder, Readable, decode_error, decoding_reader, encoder
from storage.serve.config import Limits
from storage.serve.errors import (
    BAD_ARGUMENTS,
    CANNOT_READ_ALL_DATA,
    NETWORK_ERROR,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    UNSUPPORTED_METHOD,
    ServeError,
)
from storage.serve.queries import QueryService, Request

log = logging.getLogger("sovtel.serve")

DRAIN_LIMIT = 1 << 20  # unread request bytes worth reading to keep a connection alive


class WireBody(io.RawIOBase):
    """A request body as it arrives: ``Content-Length`` or chunked, at most ``limit`` bytes."""

    def __init__(self, rfile: Any, length: int | None, chunked: bool, limit: int) -> None:
        super().__init__()
        self._rfile = rfile
        self._remaining = length if length is not None else 0
        self._chunked = chunked
        self._limit = limit
        self._total = 0
        self._chunk_left = 0
        self.exhausted = not chunked and not self._remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.exhausted or not len(view):
            return 0
        try:
            if self._chunked:
                if not self._chunk_left and not self._next_chunk():
                    return 0
                want = min(len(view), self._chunk_left)
            else:
                want = min(len(view), self._remaining)
            n = int(self._rfile.readinto(view[:want]))
        except OSError as exc:
            raise ServeError(NETWORK_ERROR, f"reading the request body failed: {exc}") from exc
        if not n:
            raise ServeError(CANNOT_READ_ALL_DATA, "the request body ended before its announced length")
        self._total += n
        if self._total > self._limit:
            raise ServeError(QUERY_IS_TOO_LARGE, f"the request body is larger than {self._limit >> 20} MiB "
                             "(limits.max_body_mb)")
        if self._chunked:
            self._chunk_left -= n
            if not self._chunk_left:
                self._expect_crlf()
        else:
            self._remaining -= n
            self.exhausted = not self._remaining
        return n

    def _next_chunk(self) -> bool:
        line = self._rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise ServeError(CANNOT_READ_ALL_DATA, "malformed chunked request body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ServeError(CANNOT_READ_ALL_DATA, "malformed chunk size in the request body") from None
        if size == 0:
            while self._rfile.readline(8194).strip():  # trailers, up to the blank line
                pass
            self.exhausted = True
            return False
        self._chunk_left = size
        return True

    def _expect_crlf(self) -> None:
        if self._rfile.readline(3).strip():
            raise ServeError(CANNOT_READ_ALL_DATA, "malformed chunked request body")


class DecodedBody(io.RawIOBase):
    """The decoded request body, at most ``limit`` bytes after decompression."""

    def __init__(self, wire: WireBody, coding: str | None, limit: int) -> None:
        super().__init__()
        self.wire = wire
        self._reader = decoding_reader(io.BufferedReader(wire, 1 << 16), coding)
        self._limit = limit
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._reader.read(len(view))
        except ServeError:
            raise
        except DECODE_ERRORS as exc:
            raise decode_error(exc) from exc
        n = len(data)
        view[:n] = data
        self._total += n
        if self._total > self._limit:
            raise ServeError(QUERY_IS_TOO_LARGE, "the decompressed request body is larger than "
                             f"{self._limit >> 20} MiB (limits.max_body_mb)")
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        n = self.readinto(buffer)
        return bytes(buffer[:n])


class HttpReply:
    """A ``Reply`` on one HTTP/1.1 exchange: Content-Length for complete bodies, chunked for streams."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler
        self._begun = False
        self._encoder: Encoder | None = None
        self._tag = b""
        self._chunked = True

    @property
    def begun(self) -> bool:
        """Whether a streamed body was started."""
        return self._begun

    def send(self, headers: dict[str, str], body: bytes | memoryview, *, coding: str | None, zlib_level: int) -> None:
        """Answer 200 with a complete body (compressed whole if ``coding``)."""
        if coding:
            compressor = encoder(coding, zlib_level)
            body = compressor.compress(body) + compressor.flush()
            headers = {**headers, "Content-Encoding": coding}
        self._send_head(200, {"Content-Type": "text/plain; charset=UTF-8", **headers, "Content-Length": str(len(body))})
        if len(body):
            self._send(body)

    def begin(self, headers: dict[str, str], *, coding: str | None, zlib_level: int) -> None:
        """Answer 200 and start a chunked body (for HTTP/1.0: a body that ends with the connection)."""
        self._begun = True
        self._encoder = encoder(coding, zlib_level) if coding else None
        self._tag = headers.get("X-ClickHouse-Exception-Tag", "").encode()
        extra = {"Content-Encoding": coding} if coding else {}
        self._chunked = self._handler.request_version != "HTTP/1.0"
        if self._chunked:
            extra["Transfer-Encoding"] = "chunked"
        else:
            self._handler.close_connection = True
        self._send_head(200, {"Content-Type": "text/plain; charset=UTF-8", **headers, **extra})

    def write(self, data: bytes | memoryview) -> None:
        """Add to a streamed body (compressed if negotiated)."""
        if len(data):
            self._chunk(self._encoder.compress(data) if self._encoder is not None else data)

    def end(self) -> None:
        """Finish a streamed body."""
        if self._encoder is not None:
            self._chunk(self._encoder.flush())
        if self._chunked:
            self._send(b"0\r\n\r\n")

    def abort(self, error: ServeError) -> None:
        """End a streamed body with ClickHouse's tagged exception block (clickhouse-connect raises on it)."""
        message = error.text.encode("utf-8", "replace")
        block = b"__exception__\r\n" + self._tag + b"\r\n" + message + b"\n" + str(len(message)).encode() + b" " \
            + self._tag + b"\r\n__exception__\r\n"
        try:
            self.write(block)
            self.end()
        except OSError:
            self._handler.close_connection = True

    def error(self, error: ServeError, headers: dict[str, str]) -> None:
        """Answer with an error status and ClickHouse's exception text."""
        body = error.body()
        self._send_head(error.status, {
            **{k: v for k, v in headers.items() if k in ("X-ClickHouse-Query-Id", "X-ClickHouse-Timezone")},
            "X-ClickHouse-Exception-Code": str(error.code),
            "Content-Type": "text/plain; charset=UTF-8",
            "Content-Length": str(len(body)),
        })
        self._send(body)

    def _chunk(self, data: bytes | memoryview) -> None:
        if not len(data):
            return
        if not self._chunked:
            self._send(data)
            return
        head = b"%x\r\n" % len(data)
        if len(data) < 1 << 16:
            self._send(head + bytes(data) + b"\r\n")
        else:
            self._send(head)
            self._send(data)
            self._send(b"\r\n")

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        handler = self._handler
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()

    def _send(self, data: bytes | memoryview) -> None:
        self._handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    """One client connection; requests on it are handled one after another (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "sovtel-serve"
    service: QueryService
    limits: Limits

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.settimeout(self.limits.idle_connection_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        """Queries in the ``query`` parameter (read-only), and the health check."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Queries and INSERT data in the body."""
        self._handle("POST")

    def do_PUT(self) -> None:
        """Refused: ClickHouse takes queries by GET and POST."""
        self._refuse()

    do_DELETE = do_PATCH = do_PUT  # noqa: N815 (http.server dispatches on these names)

    def _refuse(self) -> None:
        self.close_connection = True
        HttpReply(self).error(ServeError(UNSUPPORTED_METHOD, f"HTTP method {self.command} is not supported"), {})

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            wire = self._wire_body() if method == "POST" else None
        except ServeError as exc:
            self.close_connection = True
            HttpReply(self).error(exc, {})
            return
        try:
            self._dispatch(method, url.path, url.query, wire)
        except OSError as exc:
            log.debug("client %s went away: %s", self.client_address[0], exc)
            self.close_connection = True
            return
        except Exception:  # never let one request take the connection's thread down silently
            log.exception("request %s %s failed", method, url.path)
            self.close_connection = True
            return
        if wire is not None and not wire.exhausted:
            self._drain(wire)

    def _dispatch(self, method: str, path: str, query: str, wire: WireBody | None) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"))
        if path in ("/ping", "/replicas_status") or (path == "/" and method == "GET" and "query" not in params):
            self._plain(200, b"Ok.\n")
            return
        if path not in ("/", "/query"):
            self._plain(404, f"There is no handle {path}\n\nUse / or /ping for health checks.\n".encode())
            return
        body: Readable | None = None
        reply = HttpReply(self)
        try:
            if wire is not None:
                decoded = DecodedBody(wire, self.headers.get("Content-Encoding"), self.limits.max_body_mb << 20)
                if self.headers.get_content_type() == "multipart/form-data":
                    params.update(self._form_fields(decoded))
                else:
                    body = decoded
        except ServeError as exc:
            self.close_connection = True
            reply.error(exc, {})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(method, self.client_address[0], _Headers(headers), params, body)
        self.service.handle(request, reply)

    def _wire_body(self) -> WireBody:
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        length_header = self.headers.get("Content-Length")
        length: int | None = None
        if not chunked and length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                raise ServeError(BAD_ARGUMENTS, "invalid Content-Length") from None
            if length < 0:
                raise ServeError(BAD_ARGUMENTS, "invalid Content-Length")
        limit = self.limits.max_body_mb << 20
        if length is not None and length > limit:
            raise ServeError(QUERY_IS_TOO_LARGE, f"the request body is larger than {self.limits.max_body_mb} MiB "
                             "(limits.max_body_mb)")
        return WireBody(self.rfile, length, chunked, limit)

    def _form_fields(self, body: Readable) -> dict[str, str]:
        """The fields of a multipart/form-data body (clickhouse-connect sends long parameters so)."""
        limit = self.limits.max_query_kb * 1024 * 4
        data = body.read(limit + 1)
        if len(data) > limit:
            raise ServeError(QUERY_IS_TOO_LARGE, "the form is too large")
        header = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + data)
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            if part.get_filename() is not None:
                raise ServeError(NOT_IMPLEMENTED, "external data (tables sent with the query) is not supported")
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode("utf-8", "surrogateescape") if isinstance(payload, bytes) else ""
        return fields

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drain(self, wire: WireBody) -> None:
        """Read what the request left unread so the connection can carry the next one, or close it."""
        try:
            left = DRAIN_LIMIT
            while left > 0 and not wire.exhausted:
                got = wire.read(min(left, 1 << 16))
                if not got:
                    break
                left -= len(got)
        except (ServeError, OSError):
            pass
        if not wire.exhausted:
            self.close_connection = True


class _Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys stored lower-cased)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class StoreServer:
    """``sovtel serve``'s HTTP server; ``start`` serves on a background thread, ``shutdown`` stops it."""

    def __init__(self, service: QueryService, host: str, port: int, limits: Limits) -> None:
        handler = type("Handler", (_Handler,), {"service": service, "limits": limits})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (_Server,), {"address_family": family})
        self._server = server_class((host, port), handler, limits.max_connections)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound (a port of 0 is replaced by the one chosen)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="sovtel-serve", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting and close the listening socket; idempotent."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\nConnection: close\r\n\r\n"
                                b"Too many connections\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
