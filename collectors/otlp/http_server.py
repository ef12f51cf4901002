"""OTLP/HTTP: POST /v1/traces, /v1/metrics, /v1/logs with protobuf or JSON bodies, optionally compressed.

Responses follow the OTLP/HTTP specification: the Export*ServiceResponse in the request's encoding
on success, a ``google.rpc.Status`` with a message on failure, 429 with Retry-After when the
pipeline is full or the receiver is already decoding ``max_inflight_bytes``, 503 with Retry-After
when every worker is busy, 408 when a request does not arrive whole within ``request_timeout_s``.
No input crashes the server; every refusal is counted by reason. Connections, workers and
deadlines are handled by ``http_connections``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from collectors.otlp.auth import Authenticator
from collectors.otlp.config import DEFAULT_MAX_INFLIGHT_BYTES, HttpProtocol, split_endpoint
from collectors.otlp.http_connections import Connection, ConnectionLoop, DeadlineReader, SocketWriter
from collectors.otlp.inflight import InflightBudget, Reservation
from collectors.otlp.ingest import Encoding, Ingest, Outcome, Status, export_response
from sovtel.records import Signal

log = logging.getLogger("sovtel.collectors.otlp.http")

PATHS = {"/v1/traces": Signal.TRACES, "/v1/metrics": Signal.METRICS, "/v1/logs": Signal.LOGS}
MEDIA_TYPES = {"application/x-protobuf": Encoding.PROTOBUF, "application/json": Encoding.JSON}
CONTENT_TYPES = {Encoding.PROTOBUF: "application/x-protobuf", Encoding.JSON: "application/json"}
# zlib window bits: gzip framing, and zlib framing (what HTTP calls "deflate").
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# A refused body up to this size is read and discarded so the client can read our answer on a
# kept-alive connection; beyond it the connection is closed instead.
_DRAIN_LIMIT = 64 * 1024 * 1024

_HTTP_OF = {
    Status.OK: HTTPStatus.OK,
    Status.BAD_DATA: HTTPStatus.BAD_REQUEST,
    Status.REJECTED: HTTPStatus.BAD_REQUEST,
    Status.BACKPRESSURE: HTTPStatus.TOO_MANY_REQUESTS,
    Status.NO_PIPELINE: HTTPStatus.NOT_FOUND,
    Status.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    Status.FORBIDDEN: HTTPStatus.FORBIDDEN,
    Status.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
}
_RPC_CODE_OF = {
    Status.BAD_DATA: code_pb2.INVALID_ARGUMENT,
    Status.REJECTED: code_pb2.FAILED_PRECONDITION,
    Status.BACKPRESSURE: code_pb2.RESOURCE_EXHAUSTED,
    Status.NO_PIPELINE: code_pb2.UNIMPLEMENTED,
    Status.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    Status.FORBIDDEN: code_pb2.PERMISSION_DENIED,
    Status.INTERNAL: code_pb2.INTERNAL,
}


class _RefusalError(Exception):
    """A request refused by the transport before decoding: HTTP status, counted reason, message."""

    def __init__(
        self,
        status: HTTPStatus,
        reason: str,
        message: str,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.close = close
        self.headers = headers


def _inflate(body: bytes, coding: str, limit: int) -> bytes:
    """Decompress ``body``, refusing output over ``limit`` bytes (a small bomb cannot blow up memory)."""
    out = bytearray()
    data = body
    try:
        while True:
            d = zlib.decompressobj(_WBITS[coding])
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit or d.unconsumed_tail:
                raise _RefusalError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "too_large",
                    f"decompressed body exceeds max_body_bytes ({limit} bytes)",
                )
            if not d.eof:
                raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_encoding", f"{coding} body is truncated")
            data = d.unused_data
            # gzip allows several members back to back; anything else after the end is an error.
            if not data or coding == "deflate":
                if data:
                    raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_encoding", "data after the deflate stream")
                return bytes(out)
    except zlib.error as exc:
        raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_encoding", f"body is not valid {coding}: {exc}") from None


class _Handler(BaseHTTPRequestHandler):
    """One request of a client connection, served on a worker of the connection loop."""

    server: OtlpHttpServer  # type: ignore[assignment]
    request: Connection
    rfile: DeadlineReader  # type: ignore[assignment]
    wfile: SocketWriter  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    # Answer even unparseable request lines (e.g. TLS sent to this plain port) with a status line;
    # the base class would reply HTTP/0.9-style with a bare body.
    default_request_version = "HTTP/1.1"
    server_version = "sovtel-otlp"
    sys_version = ""

    def setup(self) -> None:
        # The connection outlives the handler: its reader keeps bytes read ahead for the next request.
        self.connection = self.request.sock
        self.rfile = self.request.reader
        self.wfile = SocketWriter(self.connection, self.server.settings.read_timeout_s)
        self._responded = False
        self._reservation: Reservation | None = None
        # What the base class sets while parsing; a request that times out before its line is parsed
        # is still answered (408), which needs them.
        self.command, self.requestline, self.request_version = "", "", self.default_request_version

    def _release(self) -> None:
        if self._reservation is not None:
            self._reservation.release()

    def handle(self) -> None:
        """One request; a request that does not arrive whole before its deadline is answered 408 and closed."""
        self.close_connection = True
        try:
            self.handle_one_request()
        finally:
            self._release()
        if self.rfile.timed_out and not self._responded:
            # handle_one_request swallowed the timeout; tell the client (if it still listens) and count it.
            self.server.ingest.refused("request_timeout")
            self.close_connection = True
            self._send_status(
                HTTPStatus.REQUEST_TIMEOUT,
                code_pb2.DEADLINE_EXCEEDED,
                f"the request did not arrive within request_timeout_s ({self.server.settings.request_timeout_s:g} s)"
                f" or stalled for read_timeout_s ({self.server.settings.read_timeout_s:g} s)",
                Encoding.JSON,
                close=True,
            )

    def finish(self) -> None:
        """Nothing to flush or close: the connection loop owns the socket."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # --- request dispatch ------------------------------------------------------------------

    def do_POST(self) -> None:
        """Export request."""
        self._serve(post=True)

    def do_GET(self) -> None:
        """Not an OTLP method."""
        self._serve(post=False)

    def do_PUT(self) -> None:
        """Not an OTLP method."""
        self._serve(post=False)

    def do_DELETE(self) -> None:
        """Not an OTLP method."""
        self._serve(post=False)

    def do_PATCH(self) -> None:
        """Not an OTLP method."""
        self._serve(post=False)

    def do_OPTIONS(self) -> None:
        """Not an OTLP method."""
        self._serve(post=False)

    def do_HEAD(self) -> None:
        """Not an OTLP method (and a HEAD answer carries no body)."""
        self._serve(post=False)

    def _serve(self, post: bool) -> None:
        encoding = Encoding.JSON
        self._body_read = False
        try:
            path = urlsplit(self.path).path
            signal = PATHS.get(path)
            if signal is None:
                raise _RefusalError(
                    HTTPStatus.NOT_FOUND,
                    "not_found",
                    f"no OTLP endpoint at {path!r}; use /v1/traces, /v1/metrics or /v1/logs",
                )
            if not post:
                raise _RefusalError(
                    HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"{self.command} is not allowed; use POST"
                )
            media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            found = MEDIA_TYPES.get(media)
            if found is None:
                raise _RefusalError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    f"Content-Type {media or '(none)'!r} is not supported; "
                    "use application/x-protobuf or application/json",
                )
            encoding = found
            tenant: str | None = None
            auth = self.server.authenticator
            if auth is not None:
                tenant = auth.tenant_for(self.headers.get("Authorization"))
                if tenant is None:
                    raise _RefusalError(
                        HTTPStatus.UNAUTHORIZED,
                        "unauthenticated",
                        "a valid bearer token is required (Authorization: Bearer <token>)",
                        headers={"WWW-Authenticate": 'Bearer realm="otlp"'},
                    )
            coding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            if coding not in _WBITS and coding != "identity":
                raise _RefusalError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    f"Content-Encoding {coding!r} is not supported; use gzip, deflate or none",
                )
            self._reservation = self.server.budget.try_reserve(0)
            body = self._read_body()
            if coding != "identity":
                body = _inflate(body, coding, self.server.settings.max_body_bytes)
                self._hold(len(body), close=False)
            if not body:
                raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_data", "empty request body; send an export request")
        except _RefusalError as refusal:
            self.server.ingest.refused(refusal.reason)
            self._drain_if_unread(refusal)
            self._release()
            code = code_pb2.INVALID_ARGUMENT if refusal.status < 500 else code_pb2.INTERNAL
            if refusal.status == HTTPStatus.UNAUTHORIZED:
                code = code_pb2.UNAUTHENTICATED
            elif refusal.status == HTTPStatus.TOO_MANY_REQUESTS:
                code = code_pb2.RESOURCE_EXHAUSTED
            self._send_status(
                refusal.status, code, refusal.message, encoding, close=refusal.close, headers=refusal.headers
            )
            return
        outcome = self.server.ingest.handle(signal, body, encoding, "http", tenant)
        del body
        # Released before answering: a client that sends its next request on the answer finds the room free.
        self._release()
        self._answer(signal, outcome, encoding)

    # --- body ----------------------------------------------------------------------------

    _body_read = False

    def _hold(self, size: int, close: bool) -> None:
        """Hold ``size`` bytes of the in-flight budget for this request, or refuse it as retryable (429)."""
        assert self._reservation is not None
        if self._reservation.grow_to(size):
            return
        budget = self.server.budget
        raise _RefusalError(
            HTTPStatus.TOO_MANY_REQUESTS,
            "inflight_bytes",
            f"the receiver is decoding {budget.used} bytes of requests (max_inflight_bytes {budget.limit}); "
            "retry later",
            close=close,
            headers={"Retry-After": str(self.server.retry_after_s)},
        )

    def _read_body(self) -> bytes:
        limit = self.server.settings.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._body_read = True
            return b""  # an HTTP/1.1 request without Content-Length or chunking has no body
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise _RefusalError(
                HTTPStatus.BAD_REQUEST, "bad_request", f"invalid Content-Length {length_text!r}", close=True
            ) from None
        if length > limit:
            raise _RefusalError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"body of {length} bytes exceeds max_body_bytes ({limit} bytes)",
            )
        self._hold(length, close=False)  # before reading: a refused body is drained, never held
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_request", "body shorter than Content-Length", close=True)
        return body

    def _read_chunked(self, limit: int) -> bytes:
        out = bytearray()
        try:
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError
                if size == 0:
                    while self.rfile.readline(8192).strip():  # trailers
                        pass
                    self._body_read = True
                    return bytes(out)
                if len(out) + size > limit:
                    raise _RefusalError(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        "too_large",
                        f"chunked body exceeds max_body_bytes ({limit} bytes)",
                        close=True,
                    )
                self._hold(len(out) + size, close=True)
                chunk = self.rfile.read(size)
                if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                    raise ValueError
                out += chunk
        except ValueError:
            raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_request", "malformed chunked body", close=True) from None

    def _drain_if_unread(self, refusal: _RefusalError) -> None:
        """Read and drop an unread body, so the connection can carry the answer and the next request."""
        if self._body_read or refusal.close:
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            refusal.close = True
            return
        try:
            remaining = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            remaining = 0
        if remaining > _DRAIN_LIMIT:
            refusal.close = True
            return
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            refusal.close = True
        self._body_read = True

    # --- responses -----------------------------------------------------------------------

    def _answer(self, signal: Signal, outcome: Outcome, encoding: Encoding) -> None:
        if outcome.status is Status.OK:
            response = export_response(signal, outcome)
            if encoding is Encoding.PROTOBUF:
                body = response.SerializeToString()
            else:
                body = json_format.MessageToJson(response, indent=None).encode()
            self._send(HTTPStatus.OK, body, CONTENT_TYPES[encoding])
            return
        headers = {}
        if outcome.status is Status.BACKPRESSURE:
            headers["Retry-After"] = str(self.server.retry_after_s)
        status = _HTTP_OF[outcome.status]
        self._send_status(status, _RPC_CODE_OF[outcome.status], outcome.message, encoding, headers=headers)

    def _send_status(
        self,
        status: HTTPStatus,
        code: int,
        message: str,
        encoding: Encoding,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        st = status_pb2.Status(code=code, message=message)
        if encoding is Encoding.PROTOBUF:
            body = st.SerializeToString()
        else:
            body = json_format.MessageToJson(st, indent=None).encode()
        if close:
            self.close_connection = True
        self._send(status, body, CONTENT_TYPES[encoding], headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._responded = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client went away; nothing left to tell it
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (the base class calls this): count it and answer with a Status body."""
        self.server.ingest.refused("method_not_allowed" if code == HTTPStatus.NOT_IMPLEMENTED else "bad_request")
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        body = json_format.MessageToJson(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=text), indent=None)
        self._send(HTTPStatus(code), body.encode(), CONTENT_TYPES[Encoding.JSON])


class OtlpHttpServer:
    """The OTLP/HTTP listener: binds at ``start`` (fail fast), serves on a bounded pool of workers."""

    def __init__(
        self,
        settings: HttpProtocol,
        ingest: Ingest,
        retry_after_s: int,
        authenticator: Authenticator | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.retry_after_s = retry_after_s
        self.authenticator = authenticator
        self.budget = budget if budget is not None else InflightBudget(DEFAULT_MAX_INFLIGHT_BYTES)
        self._loop: ConnectionLoop | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Bind and serve; returns the bound port. Raises OSError if the endpoint cannot be bound."""
        host, port = split_endpoint(self.settings.endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        context: ssl.SSLContext | None = None
        tls = self.settings.tls
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(self.settings.listen_backlog)
        except OSError as exc:
            listener.close()
            where = self.settings.endpoint
            raise OSError(exc.errno, f"cannot listen for OTLP/HTTP on {where}: {exc.strerror}") from exc
        self.port = int(listener.getsockname()[1])
        if context is not None:
            listener = context.wrap_socket(listener, server_side=True, do_handshake_on_connect=False)
        self._loop = ConnectionLoop(
            listener,
            self._serve_connection,
            self.ingest.refused,
            workers=self.settings.max_workers,
            max_pending=self.settings.max_pending_requests,
            max_connections=self.settings.max_connections,
            idle_timeout_s=self.settings.read_timeout_s,
            refusal=_busy_answer(self.retry_after_s),
            name=f"otlp-http-{self.port}",
        )
        self._loop.start()
        return self.port

    @property
    def peak_busy_workers(self) -> int:
        """The most workers ever busy at once (0 before start)."""
        return self._loop.peak_busy if self._loop is not None else 0

    def _serve_connection(self, conn: Connection) -> bool:
        """Serve one request of ``conn`` on a worker; whether the connection stays open."""
        conn.reader.start_request(self.settings.request_timeout_s)
        try:
            if not conn.handshaken:
                # The TLS handshake runs here, on a worker, under the request's deadline.
                conn.sock.settimeout(self.settings.request_timeout_s)
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.handshaken = True
            handler = _Handler(conn, conn.address, self)  # type: ignore[arg-type]
        finally:
            conn.reader.end_request()
        return not handler.close_connection

    def shutdown(self) -> None:
        """Stop accepting, hang up open connections, release the port; idempotent."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()


def _busy_answer(retry_after_s: int) -> bytes:
    """The canned 503 the connection loop sends when no worker can take a request."""
    status = status_pb2.Status(
        code=code_pb2.UNAVAILABLE, message="the receiver is busy (every worker and wait slot is taken); retry later"
    )
    body: bytes = json_format.MessageToJson(status, indent=None).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Server: sovtel-otlp\r\n"
        f"Content-Type: {CONTENT_TYPES[Encoding.JSON]}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {retry_after_s}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
