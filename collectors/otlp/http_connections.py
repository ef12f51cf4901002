"""Client connections of the OTLP/HTTP server: one selector thread, a bounded pool of workers, deadlines.

A thread per connection lets a thousand clients (or one slow one per thread) exhaust the process;
here threads and memory are bounded whatever the clients do:

- One selector thread accepts connections (the listen backlog is configurable, e.g. 1024) and keeps
  idle kept-alive connections without a thread; an idle connection is closed after the idle timeout.
- A connection with a request arriving goes to a bounded pool of workers. When every worker is
  busy and ``max_pending`` requests already wait, or ``max_connections`` are open, the client is
  answered at once with a canned 503 and ``Retry-After`` (retryable for OTLP clients) and the
  connection is closed gracefully (our write side shut, the rest of its request read and dropped
  for a few seconds), so the client reads the answer instead of a reset.
- A worker reads one request through a ``DeadlineReader``: every read waits at most the idle
  timeout, and the whole request (headers and body) must arrive before a total deadline, so a
  client trickling one byte a second is cut off.

TLS connections over the limit are closed without an answer: the handshake would have to run on
the selector thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sovtel.collectors.otlp.http")

_RECV = 64 * 1024
# How long a refused connection is read from (and its data dropped) before it is closed anyway.
LINGER_S = 5.0
_SWEEP_S = 0.25


class RequestTimeout(TimeoutError):
    """The request did not arrive whole before its deadline."""


class DeadlineReader:
    """Buffered reads from a socket: at most ``idle_timeout_s`` per read, and a total ``deadline`` per request.

    The buffer outlives a request, so pipelined bytes of the next request are kept for it.
    """

    def __init__(self, sock: socket.socket, idle_timeout_s: float) -> None:
        self.sock = sock
        self.idle_timeout_s = idle_timeout_s
        self.buffer = bytearray()
        self.deadline: float | None = None  # time.monotonic() value
        self.timed_out = False  # a read of this request timed out (deadline or idle)

    def start_request(self, total_s: float) -> None:
        """Begin a request that must arrive whole within ``total_s`` seconds."""
        self.deadline = time.monotonic() + total_s
        self.timed_out = False

    def end_request(self) -> None:
        """The request was read; the next one gets its own deadline."""
        self.deadline = None

    def _timeout(self) -> float:
        if self.deadline is None:
            return self.idle_timeout_s
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out = True
            raise RequestTimeout("the request did not arrive before its deadline")
        return min(self.idle_timeout_s, remaining)

    def _recv_into(self, view: memoryview) -> int:
        self.sock.settimeout(self._timeout())
        try:
            return self.sock.recv_into(view)
        except TimeoutError:
            self.timed_out = True
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise RequestTimeout("the request did not arrive before its deadline") from None
            raise

    def _fill(self) -> bool:
        """Read what the socket has into the buffer; False at end of stream."""
        chunk = bytearray(_RECV)
        n = self._recv_into(memoryview(chunk))
        if n == 0:
            return False
        self.buffer += memoryview(chunk)[:n]
        return True

    def readline(self, limit: int = -1) -> bytes:
        """One line including its newline, at most ``limit`` bytes (fewer at end of stream)."""
        start = 0
        while True:
            i = self.buffer.find(b"\n", start)
            if i >= 0 and (limit < 0 or i < limit):
                n = i + 1
                break
            if 0 <= limit <= len(self.buffer):
                n = limit
                break
            start = len(self.buffer)
            if not self._fill():
                n = len(self.buffer)
                break
        line = bytes(self.buffer[:n])
        del self.buffer[:n]
        return line

    def read(self, size: int) -> bytes:
        """``size`` bytes (fewer only at end of stream)."""
        out = bytearray(size)
        view = memoryview(out)
        got = min(size, len(self.buffer))
        view[:got] = self.buffer[:got]
        del self.buffer[:got]
        while got < size:
            n = self._recv_into(view[got:])
            if n == 0:
                break
            got += n
        view.release()
        if got < size:
            del out[got:]
        return bytes(out)

    def buffered(self) -> bool:
        """Whether bytes of a next request are already here (in our buffer or TLS's)."""
        if self.buffer:
            return True
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0


class SocketWriter:
    """The ``wfile`` of a handler: each write is sent whole, waiting at most ``timeout_s`` per send."""

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        self.sock = sock
        self.timeout_s = timeout_s

    def write(self, data: bytes) -> int:
        """Send ``data``; raises OSError (e.g. TimeoutError) if the client does not read it."""
        self.sock.settimeout(self.timeout_s)
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


class Connection:
    """One client connection: its socket, peer address and reader (with any bytes read ahead)."""

    __slots__ = ("address", "handshaken", "idle_since", "reader", "sock")

    def __init__(self, sock: socket.socket, address: tuple[str, int], idle_timeout_s: float) -> None:
        self.sock = sock
        self.address = address
        self.reader = DeadlineReader(sock, idle_timeout_s)
        self.idle_since = time.monotonic()
        self.handshaken = not isinstance(sock, ssl.SSLSocket)

    def close(self) -> None:
        """Close the socket; safe twice."""
        with contextlib.suppress(OSError):
            self.sock.close()


class ConnectionLoop:
    """Accepts on ``listener`` and runs ``serve(connection) -> keep_open`` for each request on a worker.

    ``serve`` handles one request and returns whether the connection stays open for another.
    ``refused(reason)`` counts a connection answered 503 by the loop itself (``overloaded`` when
    every worker is busy and the wait line is full, ``too_many_connections`` at ``max_connections``).
    """

    def __init__(
        self,
        listener: socket.socket,
        serve: Callable[[Connection], bool],
        refused: Callable[[str], None],
        *,
        workers: int,
        max_pending: int,
        max_connections: int,
        idle_timeout_s: float,
        refusal: bytes,
        name: str,
    ) -> None:
        self.listener = listener
        self._serve = serve
        self._refused = refused
        self.workers = workers
        self.max_pending = max_pending
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._refusal = refusal
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._cond = threading.Condition()
        self._ready: collections.deque[Connection] = collections.deque()
        # Connections handed back by workers: (connection, keep open) — kept ones are parked, the
        # others closed gracefully.
        self._returned: collections.deque[tuple[Connection, bool]] = collections.deque()
        self._parked: dict[socket.socket, Connection] = {}
        self._busy: set[Connection] = set()
        self._lingering: dict[socket.socket, float] = {}
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.peak_busy = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the selector thread and the workers."""
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._threads.append(threading.Thread(target=self._select_loop, name=self.name, daemon=True))
        for i in range(self.workers):
            self._threads.append(threading.Thread(target=self._work, name=f"{self.name}-w{i}", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, hang up every connection (in-service ones too), join the threads."""
        with self._cond:
            self._stopping = True
            busy = list(self._busy)
            self._cond.notify_all()
        self._wake()
        for conn in busy:
            with contextlib.suppress(OSError):  # already gone
                conn.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        self._threads.clear()
        with self._cond:
            left = list(self._ready)
            self._ready.clear()
        for conn in left:
            conn.close()
        for s in (self._wake_r, self._wake_w):
            s.close()

    @property
    def open_connections(self) -> int:
        """Connections held now (idle, waiting, in service, or being closed after a refusal)."""
        with self._cond:
            return len(self._parked) + len(self._ready) + len(self._busy) + len(self._lingering)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe is already a pending wake-up
            self._wake_w.send(b"\0")

    # --- selector thread ---------------------------------------------------------------------

    def _select_loop(self) -> None:
        next_sweep = time.monotonic() + _SWEEP_S
        try:
            while not self._stopping:
                for key, _mask in self._selector.select(timeout=_SWEEP_S):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._take_returned()
                    elif key.data == "linger":
                        self._linger_read(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._readable(key.data)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + _SWEEP_S
        except Exception:  # a bug here must not leave the port open and silent
            log.exception("OTLP/HTTP connection loop failed")
        finally:
            self._close_all()

    def _accept(self) -> None:
        for _ in range(256):  # bounded, so returned connections and wake-ups get their turn
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the ones we have
                log.warning("accepting an OTLP/HTTP connection failed: %s", exc)
                return
            if self.open_connections >= self.max_connections:
                self._refuse(sock, "too_many_connections")
                continue
            self._park(Connection(sock, address, self.idle_timeout_s))

    def _park(self, conn: Connection) -> None:
        try:
            conn.sock.setblocking(False)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            conn.close()
            return
        conn.idle_since = time.monotonic()
        with self._cond:
            self._parked[conn.sock] = conn

    def _readable(self, conn: Connection) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        with self._cond:
            self._parked.pop(conn.sock, None)
        if self._closed_by_client(conn.sock):
            conn.close()  # a client hanging up takes no worker and no wait slot
            return
        with self._cond:
            # Workers not serving a request take the first waiting ones; beyond them max_pending may wait.
            full = len(self._ready) - (self.workers - len(self._busy)) >= self.max_pending
            if not full:
                self._ready.append(conn)
                self._cond.notify()
                return
        self._refuse(conn.sock, "overloaded")

    @staticmethod
    def _closed_by_client(sock: socket.socket) -> bool:
        """Whether a readable plain socket is only at end of stream (or reset), without consuming data."""
        if isinstance(sock, ssl.SSLSocket):
            return False  # TLS bytes cannot be peeked; a worker finds out
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _take_returned(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            with self._cond:
                if not self._returned:
                    return
                conn, keep = self._returned.popleft()
            if keep:
                self._park(conn)
            else:
                self._close_gracefully(conn.sock)

    def _refuse(self, sock: socket.socket, reason: str) -> None:
        """Answer 503 with Retry-After without a worker, then close gracefully."""
        self._refused(reason)
        if isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                sock.close()
            return
        try:
            sock.setblocking(False)
            sock.send(self._refusal)  # a few hundred bytes: an idle socket's send buffer takes them
        except OSError:
            with contextlib.suppress(OSError):
                sock.close()
            return
        self._close_gracefully(sock)

    def _close_gracefully(self, sock: socket.socket) -> None:
        """Shut our side, then read and drop what the client still sends until it closes (or LINGER_S).

        Closing a socket with unread data makes the kernel reset the connection, and a reset can
        destroy the answer before the client reads it.
        """
        if isinstance(sock, ssl.SSLSocket) or len(self._lingering) >= self.max_connections:
            with contextlib.suppress(OSError):
                sock.close()
            return
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self._selector.register(sock, selectors.EVENT_READ, "linger")
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                sock.close()
            return
        with self._cond:
            self._lingering[sock] = time.monotonic() + LINGER_S

    def _linger_read(self, sock: socket.socket) -> None:
        try:
            if sock.recv(_RECV):
                return  # the rest of the refused request: dropped
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._end_linger(sock)

    def _end_linger(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)
        with self._cond:
            self._lingering.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.close()

    def _sweep(self, now: float) -> None:
        """Close idle kept-alive connections and refused ones whose client never closed."""
        with self._cond:
            idle = [c for c in self._parked.values() if now - c.idle_since >= self.idle_timeout_s]
            expired = [s for s, until in self._lingering.items() if now >= until]
        for conn in idle:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn.sock)
            with self._cond:
                self._parked.pop(conn.sock, None)
            conn.close()
        for sock in expired:
            self._end_linger(sock)

    def _close_all(self) -> None:
        with self._cond:
            parked = list(self._parked.values())
            self._parked.clear()
            lingering = list(self._lingering)
            self._lingering.clear()
            returned = list(self._returned)
            self._returned.clear()
        for conn in parked + [c for c, _keep in returned]:
            conn.close()
        for sock in lingering:
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._selector.close()

    # --- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                conn = self._ready.popleft()
                self._busy.add(conn)
                self.peak_busy = max(self.peak_busy, len(self._busy))
            keep = False
            try:
                keep = self._serve(conn)
                while keep and not self._stopping and conn.reader.buffered():
                    keep = self._serve(conn)  # a pipelined request already read ahead
            except Exception:  # a vanished client is routine; anything else must not kill the worker
                log.debug("connection from %s failed", conn.address, exc_info=True)
                keep = False
            with self._cond:
                self._busy.discard(conn)
                stopping = self._stopping
                if not stopping:
                    self._returned.append((conn, keep))
            if stopping:
                conn.close()
            else:
                self._wake()
