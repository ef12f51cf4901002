"""Content codings: which one a response gets, and request bodies decoded across frames in bounded reads."""

from __future__ import annotations

import gzip
import io
import zlib

import lz4.frame
import pytest
import zstandard

from storage.serve.compression import DECODE_ERRORS, choose_coding, decoding_reader, encoder
from storage.serve.errors import UNKNOWN_COMPRESSION_METHOD, ServeError

PIECES = [bytes([i]) * 70_000 + b"tail" for i in range(4)]
ORIGINAL = b"".join(PIECES)


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("lz4,zstd,gzip,deflate", "lz4"),
        ("gzip, zstd", "zstd"),
        ("gzip", "gzip"),
        ("deflate;q=0.5", "deflate"),
        ("lz4;q=0, gzip", "gzip"),
        ("*", "lz4"),
        ("*, lz4;q=0", "zstd"),
        ("br", None),
        ("identity", None),
        ("", None),
        (None, None),
    ],
)
def test_choose_coding(accept, coding):
    """The fastest accepted coding wins; q=0 refuses one; unknown codings fall back to none."""
    assert choose_coding(accept) == coding


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("lz4", b"".join(lz4.frame.compress(p) for p in PIECES)),  # clickhouse-connect: one frame per block
        ("zstd", b"".join(zstandard.ZstdCompressor().compress(p) for p in PIECES)),
        ("gzip", b"".join(gzip.compress(p) for p in PIECES)),
        ("deflate", zlib.compress(ORIGINAL)),
        (None, ORIGINAL),
        ("identity", ORIGINAL),
    ],
)
def test_decodes_concatenated_frames_in_bounded_reads(coding, encoded):
    """Every coding decodes across frames, and no read returns more than asked for."""
    reader = decoding_reader(io.BytesIO(encoded), coding)
    out = bytearray()
    while piece := reader.read(4096):
        assert len(piece) <= 4096
        out += piece
    assert bytes(out) == ORIGINAL


@pytest.mark.parametrize("coding", ["lz4", "zstd", "gzip", "deflate"])
def test_corrupt_bodies_raise_decode_errors(coding):
    """Garbage under a coding raises one of the errors the server maps to CANNOT_DECOMPRESS."""
    with pytest.raises(DECODE_ERRORS):
        decoding_reader(io.BytesIO(b"\x00garbage that is not compressed" * 10), coding).read(1 << 20)


def test_unknown_coding_is_refused():
    """An unsupported Content-Encoding is UNKNOWN_COMPRESSION_METHOD."""
    with pytest.raises(ServeError) as err:
        decoding_reader(io.BytesIO(b""), "snappy")
    assert err.value.code == UNKNOWN_COMPRESSION_METHOD


@pytest.mark.parametrize(
    ("coding", "decode"),
    [("lz4", lz4.frame.decompress), ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
     ("gzip", gzip.decompress), ("deflate", zlib.decompress)],
)
def test_response_encoders_make_one_stream(coding, decode):
    """A response compressed piece by piece decodes as one stream."""
    enc = encoder(coding)
    data = b"".join(enc.compress(p) for p in PIECES) + enc.flush()
    assert decode(data) == ORIGINAL
