"""HTTP content codings of request and response bodies: zstd, lz4 (frames, one per block as
clickhouse-connect sends them), gzip and deflate; request bodies are decoded in bounded reads.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import Any, Protocol, cast

import lz4.frame
import zstandard

from storage.serve.errors import CANNOT_DECOMPRESS, UNKNOWN_COMPRESSION_METHOD, ServeError

# The server's preference when a client accepts several: fastest first (ClickHouse prefers zstd; on the
# loopback and LAN links this server is for, compression speed matters more than ratio).
RESPONSE_CODINGS: tuple[str, ...] = ("lz4", "zstd", "gzip", "deflate")
REQUEST_CODINGS: frozenset[str] = frozenset({"zstd", "lz4", "gzip", "x-gzip", "deflate"})
DEFAULT_ZLIB_LEVEL = 3  # ClickHouse's http_zlib_compression_level default

class Readable(Protocol):
    """A file opened for reading bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


# What decoders raise on corrupt or truncated input.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError, EOFError, OSError, zlib.error, zstandard.ZstdError, gzip.BadGzipFile, ValueError,
)


def choose_coding(accept_encoding: str | None) -> str | None:
    """The coding to answer with for an ``Accept-Encoding`` header, or None for identity.

    Codings with ``q=0`` are refused; among the rest the server's order wins; ``*`` accepts any.
    """
    if not accept_encoding:
        return None
    accepted: set[str] = set()
    refused: set[str] = set()
    wildcard = False
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name == "*":
            wildcard = quality > 0
        elif quality > 0:
            accepted.add(name)
        else:
            refused.add(name)
    for coding in RESPONSE_CODINGS:
        if coding in accepted or (wildcard and coding not in refused):
            return coding
    return None


def decoding_reader(raw: Readable, coding: str | None) -> Readable:
    """A readable file of the decoded body for a ``Content-Encoding`` (None or identity: ``raw``).

    Concatenated frames or members are read through; ``read(n)`` never returns more than ``n``
    bytes, so a small body that expands enormously is still read in bounded pieces.
    """
    name = (coding or "").strip().lower()
    if name in ("", "identity"):
        return raw
    if name == "zstd":
        return cast(Readable, zstandard.ZstdDecompressor().stream_reader(cast(Any, raw), read_across_frames=True))
    if name == "lz4":
        return cast(Readable, lz4.frame.LZ4FrameFile(raw, "rb"))
    if name in ("gzip", "x-gzip"):
        return cast(Readable, gzip.GzipFile(fileobj=cast(Any, raw), mode="rb"))
    if name == "deflate":
        return cast(Readable, _ZlibReader(raw))
    raise ServeError(UNKNOWN_COMPRESSION_METHOD, f"Unknown HTTP Content-Encoding {coding!r}; supported: "
                     + ", ".join(sorted(REQUEST_CODINGS)))


def decode_error(exc: BaseException) -> ServeError:
    """The error for a body that does not decompress."""
    return ServeError(CANNOT_DECOMPRESS, f"Cannot decompress the request body: {exc}")


class _ZlibReader(io.RawIOBase):
    """``deflate`` as HTTP means it (zlib-wrapped), read with bounded output."""

    def __init__(self, raw: Readable) -> None:
        super().__init__()
        self._raw = raw
        self._zlib = zlib.decompressobj()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._zlib.eof:
                return 0
            data = self._zlib.unconsumed_tail or self._pending or self._raw.read(1 << 16)
            self._pending = b""
            if not data:
                raise EOFError("the deflate stream ended early")
            out = self._zlib.decompress(data, len(view))
            if out:
                view[:len(out)] = out
                return len(out)


class Encoder(Protocol):
    """A streaming compressor: ``compress`` pieces, then ``flush`` once at the end."""

    def compress(self, data: bytes | memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class _Lz4Encoder:
    """One LZ4 frame for the whole response, written as the data comes."""

    def __init__(self) -> None:
        self._frame = lz4.frame.LZ4FrameCompressor()
        self._header = self._frame.begin()

    def compress(self, data: bytes | memoryview) -> bytes:
        out: bytes = self._frame.compress(data)
        if self._header:
            out, self._header = self._header + out, b""
        return out

    def flush(self) -> bytes:
        out: bytes = self._header + self._frame.flush()
        self._header = b""
        return out


class _ZstdEncoder:
    def __init__(self) -> None:
        self._obj = zstandard.ZstdCompressor(level=1).compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return bytes(self._obj.compress(data))

    def flush(self) -> bytes:
        return bytes(self._obj.flush())


class _ZlibEncoder:
    def __init__(self, wbits: int, level: int) -> None:
        self._obj = zlib.compressobj(level=level, wbits=wbits)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


def encoder(coding: str, zlib_level: int = DEFAULT_ZLIB_LEVEL) -> Encoder:
    """A streaming compressor for a coding ``choose_coding`` returned."""
    if coding == "zstd":
        return _ZstdEncoder()
    if coding == "lz4":
        return _Lz4Encoder()
    if coding == "gzip":
        return _ZlibEncoder(31, zlib_level)
    if coding == "deflate":
        return _ZlibEncoder(15, zlib_level)
    raise ValueError(f"no encoder for {coding!r}")
