"""OTLP/HTTP: POST /v1/traces, /v1/metrics, /v1/logs with protobuf or JSON bodies, optionally compressed.

Responses follow the OTLP/HTTP specification: the Export*ServiceResponse in the request's encoding
on success, a ``google.rpc.Status`` with a message on failure, 429 with Retry-After when the
pipeline is full. No input crashes the server; every refusal is counted by reason.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from collectors.otlp.auth import Authenticator
from collectors.otlp.config import HttpProtocol, split_endpoint
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


class _Server(ThreadingHTTPServer):
    """A thread per connection; tracks connections so shutdown can hang them up."""

    daemon_threads = True
    # Bind explicitly in OtlpHttpServer so a bad endpoint fails at start-up with a clear error.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        family: int,
        settings: HttpProtocol,
        ingest: Ingest,
        retry_after_s: int,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.address_family = family
        self.authenticator = authenticator
        self.settings = settings
        self.ingest = ingest
        self.retry_after_s = retry_after_s
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanishes mid-request is routine; the base class would print a traceback.
        log.debug("connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Hang up kept-alive clients, so no handler thread serves a request after shutdown."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One client connection; each request is handled on the connection's thread."""

    server: _Server
    protocol_version = "HTTP/1.1"
    # Answer even unparseable request lines (e.g. TLS sent to this plain port) with a status line;
    # the base class would reply HTTP/0.9-style with a bare body.
    default_request_version = "HTTP/1.1"
    server_version = "sovtel-otlp"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # An idle or stalled client must not hold a thread for ever.
        self.connection.settimeout(self.server.settings.read_timeout_s)
        if isinstance(self.connection, ssl.SSLSocket):
            # The handshake runs here, on the connection's thread, not in the accept loop.
            self.connection.do_handshake()

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
            body = self._read_body()
            if coding != "identity":
                body = _inflate(body, coding, self.server.settings.max_body_bytes)
            if not body:
                raise _RefusalError(HTTPStatus.BAD_REQUEST, "bad_data", "empty request body; send an export request")
        except _RefusalError as refusal:
            self.server.ingest.refused(refusal.reason)
            self._drain_if_unread(refusal)
            code = code_pb2.INVALID_ARGUMENT if refusal.status < 500 else code_pb2.INTERNAL
            if refusal.status == HTTPStatus.UNAUTHORIZED:
                code = code_pb2.UNAUTHENTICATED
            self._send_status(
                refusal.status, code, refusal.message, encoding, close=refusal.close, headers=refusal.headers
            )
            return
        outcome = self.server.ingest.handle(signal, body, encoding, "http", tenant)
        self._answer(signal, outcome, encoding)

    # --- body ----------------------------------------------------------------------------

    _body_read = False

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
    """The OTLP/HTTP listener: binds at ``start`` (fail fast), serves on its own thread."""

    def __init__(
        self,
        settings: HttpProtocol,
        ingest: Ingest,
        retry_after_s: int,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.retry_after_s = retry_after_s
        self.authenticator = authenticator
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
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
        try:
            self._server = _Server(
                (host, port), family, self.settings, self.ingest, self.retry_after_s, self.authenticator
            )
        except OSError as exc:
            where = self.settings.endpoint
            raise OSError(exc.errno, f"cannot listen for OTLP/HTTP on {where}: {exc.strerror}") from exc
        if context is not None:
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.port

    def shutdown(self) -> None:
        """Stop accepting, hang up open connections, release the port; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
