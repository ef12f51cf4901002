"""Hand-written protobuf wire format, for encodings the protobuf library never produces itself."""

from __future__ import annotations

import struct

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def varint(n: int, width: int | None = None) -> bytes:
    """A varint; ``width`` pads it to that many bytes (a valid but non-shortest encoding)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n or (width is not None and len(out) + 1 < width):
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wiretype: int, payload: bytes | int) -> bytes:
    """One field: tag, then the payload (length-prefixed for LEN, a varint for VARINT)."""
    tag = varint(number << 3 | wiretype)
    if wiretype == LEN:
        assert isinstance(payload, bytes)
        return tag + varint(len(payload)) + payload
    if wiretype == VARINT:
        assert isinstance(payload, int)
        return tag + varint(payload)
    if wiretype == FIXED64:
        return tag + (struct.pack("<Q", payload) if isinstance(payload, int) else payload)
    assert isinstance(payload, int)
    return tag + struct.pack("<I", payload)


def string_value(s: str) -> bytes:
    """An AnyValue payload holding a string."""
    return field(1, LEN, s.encode())


def int_value(n: int) -> bytes:
    """An AnyValue payload holding an int."""
    return field(3, VARINT, n)


def key_value(key: str, value: bytes) -> bytes:
    """A KeyValue payload, key then value."""
    return field(1, LEN, key.encode()) + field(2, LEN, value)


def span(*fields: bytes, trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8) -> bytes:
    """A Span payload: ids first, then ``fields`` as given."""
    return field(1, LEN, trace_id) + field(2, LEN, span_id) + b"".join(fields)


def trace_request(*spans: bytes) -> bytes:
    """An ExportTraceServiceRequest with one resource and scope holding the span payloads."""
    scope_spans = b"".join(field(2, LEN, s) for s in spans)
    resource_spans = field(2, LEN, scope_spans)
    return field(1, LEN, resource_spans)


def log_request(*records: bytes) -> bytes:
    """An ExportLogsServiceRequest with one resource and scope holding the record payloads."""
    scope_logs = b"".join(field(2, LEN, r) for r in records)
    return field(1, LEN, field(2, LEN, scope_logs))
