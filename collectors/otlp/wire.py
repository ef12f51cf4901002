"""Vectorised protobuf wire decoding: the fields of thousands of records at once, with numpy.

``scan`` tokenises many records in lock step (one numpy pass per field position, not per record),
so a request's spans, their attributes and values are decoded without a Python object per field.
Encodings this path does not handle (a singular field sent twice, a field with an unexpected wire
type, non-shortest varints) raise ``IrregularError``; the caller then decodes the request with the exact
per-object path, which has protobuf's full semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from collectors.otlp.attributes import (
    STRING_LIST,
    Attributes,
    BoolArray,
    Cls,
    IntArray,
    Values,
    string_lists_of,
)

U64Array = npt.NDArray[np.uint64]

# Reads may run up to 20 bytes past a region's end (a tag and a length varint) before the bounds
# checks reject them; padding the buffer keeps those reads in memory without clamping every index.
_PAD = b"\0" * 32

WT_VARINT = 0
WT_FIXED64 = 1
WT_LEN = 2
WT_FIXED32 = 5

# Wire tags (field number << 3 | wire type) of the AnyValue oneof members.
_TAG_STRING = 0x0A
_TAG_BOOL = 0x10
_TAG_INT = 0x18
_TAG_DOUBLE = 0x21
_TAG_ARRAY = 0x2A
_TAG_KVLIST = 0x32
_TAG_BYTES = 0x3A
# KeyValue fields.
_TAG_KEY = 0x0A
_TAG_VALUE = 0x12

_CLS_OF_TAG = np.full(256, 255, np.uint8)
_CLS_OF_TAG[[_TAG_STRING, _TAG_BOOL, _TAG_INT, _TAG_DOUBLE]] = [Cls.STRING, Cls.BOOL, Cls.INT, Cls.DOUBLE]
_CLS_OF_TAG[[_TAG_ARRAY, _TAG_KVLIST, _TAG_BYTES]] = Cls.OTHER
_LENGTH_DELIMITED = np.zeros(256, np.bool_)
_LENGTH_DELIMITED[[_TAG_STRING, _TAG_ARRAY, _TAG_KVLIST, _TAG_BYTES]] = True
_VARINT_TAG = np.zeros(256, np.bool_)
_VARINT_TAG[[_TAG_BOOL, _TAG_INT]] = True

_SHIFTS = [np.uint64(7 * k) for k in range(10)]
# The lock-step scan costs one numpy pass per field position. Records with thousands of fields
# while few others remain (one span with 300,000 events) would cost a pass per field: past this
# many positions with fewer than _FEW_LIVE records left, the exact path (protobuf, in C) is cheaper.
_MAX_LOCKSTEP = 1024
_FEW_LIVE = 64
_LOW7 = np.uint64(0x7F)
_TAG_MAX = np.uint64(0xFFFFFFFF)


class IrregularError(Exception):
    """The payload is not in the encoding the fast path handles, or is invalid; use the exact path."""


def parse(cls: Any, payload: bytes) -> Any:
    """``cls.FromString(payload)``; a payload protobuf rejects is IrregularError (the exact path says why)."""
    try:
        return cls.FromString(payload)
    except (ProtobufDecodeError, RecursionError) as exc:
        raise IrregularError(str(exc) or type(exc).__name__) from exc


class Buffer:
    """Serialized records back to back, as bytes (for Arrow) and as a numpy view (for scanning)."""

    def __init__(self, parts: list[bytes]) -> None:
        self.data = b"".join([*parts, _PAD])
        self.array: npt.NDArray[np.uint8] = np.frombuffer(self.data, np.uint8)
        lengths = np.fromiter(map(len, parts), np.int64, len(parts))
        self.end: IntArray = np.cumsum(lengths)
        self.start: IntArray = self.end - lengths

    @classmethod
    def of(cls, payload: bytes, start: IntArray, end: IntArray) -> Buffer:
        """The records at [start, end) of ``payload`` (in order): one copy of the bytes they span, padded."""
        buffer = cls.__new__(cls)
        lo = int(start[0]) if len(start) else 0
        hi = int(end[-1]) if len(end) else 0
        buffer.data = b"".join([memoryview(payload)[lo:hi], _PAD])
        buffer.array = np.frombuffer(buffer.data, np.uint8)
        buffer.start = start - lo
        buffer.end = end - lo
        return buffer

    def binary(self, start: IntArray, end: IntArray) -> pa.Array:
        """The byte ranges [start, end) (sorted, disjoint) as a binary array, gathered in C."""
        m = len(start)
        if not m:
            return pa.array([], pa.large_binary())
        # A zero-copy partition of the buffer in which every wanted range is one segment.
        bounds = np.empty(2 * m + 2, np.int64)
        bounds[0] = 0
        bounds[1:-1:2] = start
        bounds[2:-1:2] = end
        bounds[-1] = len(self.data)
        segments = pa.Array.from_buffers(
            pa.large_binary(), 2 * m + 1, [None, pa.py_buffer(bounds), pa.py_buffer(self.data)]
        )
        return segments.take(pa.array(2 * np.arange(m, dtype=np.int64) + 1))

    def strings(self, start: IntArray, end: IntArray) -> pa.Array:
        """The byte ranges as UTF-8 strings; invalid UTF-8 is IrregularError (the exact path reports it)."""
        try:
            return self.binary(start, end).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise IrregularError(str(exc)) from exc

    def fixed64(self, start: IntArray) -> U64Array:
        """Little-endian 64-bit words at each position."""
        at = start[:, None] + np.arange(8, dtype=np.int64)
        return np.ascontiguousarray(self.array[at]).view("<u8").reshape(-1).astype(np.uint64)

    def hex(self, start: IntArray, width: int) -> bytes:
        """The ``width``-byte ranges at each position, concatenated as lower-case hex."""
        at = start[:, None] + np.arange(width, dtype=np.int64)
        return bytes(self.array[at].tobytes().hex(), "ascii")


def varints(buf: npt.NDArray[np.uint8], pos: IntArray, limit: IntArray) -> tuple[U64Array, IntArray, BoolArray]:
    """Decode a varint at each position, not reading at or past ``limit``: value, size, and whether it is
    well formed and in its shortest form."""
    ok = pos < limit
    # Positions computed from untrusted lengths may point anywhere; read somewhere harmless instead
    # (such a varint is already marked bad by the limit check).
    pos = np.where(ok, pos, 0)
    first = buf[pos]
    value = first.astype(np.uint64)
    size = np.ones(len(pos), np.int64)
    long_ = np.flatnonzero(first >= 0x80)
    if len(long_):
        # Rare (lengths over 127 bytes, large numbers): decode those few byte by byte.
        p = pos[long_]
        v = value[long_] & _LOW7
        s = np.ones(len(long_), np.int64)
        active = np.ones(len(long_), np.bool_)
        last = np.zeros(len(long_), np.uint8)
        for k in range(1, 10):
            b = buf[p + k]
            v |= np.where(active, (b.astype(np.uint64) & _LOW7) << _SHIFTS[k], np.uint64(0))
            s += active
            last = np.where(active, b, last)
            active &= b >= 0x80
            if not active.any():
                break
        # Unterminated after 10 bytes, a 10th byte holding more than the 64th bit, or a final
        # zero byte (a longer than necessary encoding) are all outside what the fast path takes.
        good = ~active & (last != 0) & ((s < 10) | (last <= 1))
        value[long_] = v
        size[long_] = s
        ok[long_] &= good & (p + s <= limit[long_])
    return value, size, ok


@dataclass
class Fields:
    """Every field of many records, record by record in wire order."""

    rec: IntArray  # the record each field belongs to
    num: IntArray  # field number
    wt: IntArray  # wire type
    value: U64Array  # varint fields: the value; length-delimited: the length
    start: IntArray  # payload start (varint fields: where the varint starts)
    end: IntArray  # payload end

    def where(self, number: int, wiretype: int) -> IntArray:
        """Indices of the fields with this number; another wire type for it is IrregularError."""
        sel = np.flatnonzero(self.num == number)
        if len(sel) and (self.wt[sel] != wiretype).any():
            raise IrregularError(f"field {number} with an unexpected wire type")
        return sel

    def singular(self, number: int, wiretype: int) -> IntArray:
        """Like ``where`` for a singular field; a record holding it twice is IrregularError."""
        sel = self.where(number, wiretype)
        rows = self.rec[sel]
        if len(rows) > 1 and (rows[1:] == rows[:-1]).any():
            raise IrregularError(f"field {number} repeated in one record")
        return sel


# Per wire type, for fields whose tag and varint are one byte each (what SDKs write almost always):
# where the payload starts and where the field ends, relative to the tag, before adding a length.
_FAST_PAYLOAD = np.array([1, 1, 2, 0, 0, 1, 0, 0], np.int64)
_FAST_STOP = np.array([2, 9, 2, 0, 0, 5, 0, 0], np.int64)
_FAST_VARINT_BYTE = np.array([0xFF, 0, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF], np.uint8)
_FIXED_SIZE = np.array([0, 8, 0, 0, 0, 4, 0, 0], np.int64)
_VALID_WT = np.array([True, True, True, False, False, True, False, False])


def _step_fast(buf: npt.NDArray[np.uint8], p: IntArray, e: IntArray) -> tuple[IntArray, ...] | None:
    """One field per record when every tag and varint is a single byte; None if some is not."""
    tag = buf[p]
    b1 = buf[p + 1]
    first = int(tag[0])
    if first < 0x80 and (tag == first).all():
        # Records from one SDK share their layout, so every record is usually at the same field
        # (e.g. the n-th attribute): decide the wire type once for all of them.
        return _step_uniform(first, b1, p, e)
    wt = tag & 7
    if ((tag | (b1 & _FAST_VARINT_BYTE[wt])) >= 0x80).any() or not _VALID_WT[wt].all():
        return None
    is_len = wt == WT_LEN
    stop = p + _FAST_STOP[wt] + b1 * is_len
    num = (tag >> 3).astype(np.int64)
    if not ((stop <= e).all() and (num > 0).all()):
        raise IrregularError("malformed field")
    return num, wt.astype(np.int64), b1.astype(np.int64), p + _FAST_PAYLOAD[wt], stop


def _step_uniform(tag: int, b1: U8Array, p: IntArray, e: IntArray) -> tuple[IntArray, ...] | None:
    """``_step_fast`` when every record's next field has the same one-byte tag."""
    wt = tag & 7
    if not _VALID_WT[wt] or tag < 8:
        return None
    if wt in (WT_LEN, WT_VARINT):
        if (b1 >= 0x80).any():
            return None
        value = b1.astype(np.int64)
        payload = p + (2 if wt == WT_LEN else 1)
        stop = payload + value if wt == WT_LEN else p + 2
    else:
        value = np.zeros(len(p), np.int64)
        payload = p + 1
        stop = payload + int(_FIXED_SIZE[wt])
    if not (stop <= e).all():
        raise IrregularError("malformed field")
    n = len(p)
    return np.full(n, tag >> 3, np.int64), np.full(n, wt, np.int64), value, payload, stop


def _step(buf: npt.NDArray[np.uint8], p: IntArray, e: IntArray) -> tuple[IntArray, ...]:
    """One field per record, any tag and varint size."""
    utag, tsize, ok = varints(buf, p, e)
    tag = utag.view(np.int64)
    q = p + tsize
    wt = tag & 7
    num = tag >> 3
    uvalue, vsize, vok = varints(buf, q, e)
    value = uvalue.view(np.int64)
    is_len = wt == WT_LEN
    payload = np.where(is_len, q + vsize, q)
    # length-delimited: payload + length; varint: the varint itself; fixed: 8 or 4 bytes.
    stop = np.where(is_len, payload + value, np.where(wt == WT_VARINT, q + vsize, q + _FIXED_SIZE[wt & 7]))
    needs_varint = is_len | (wt == WT_VARINT)
    # protobuf reads a tag as 32 bits at most: a longer one is an error there, not an unknown field.
    ok &= (num > 0) & (utag <= _TAG_MAX) & _VALID_WT[wt] & (stop <= e) & (stop >= payload) & (vok | ~needs_varint)
    if not ok.all():
        raise IrregularError("malformed or unsupported field encoding")
    return num, wt, value, payload, stop


def scan(buf: npt.NDArray[np.uint8], start: IntArray, end: IntArray) -> Fields:
    """Tokenise the records [start, end) in lock step: one pass per field position across all records."""
    pos = start.copy()
    live = np.flatnonzero(pos < end)
    chunks: list[tuple[IntArray, ...]] = []
    everyone = len(live) == len(pos)
    while len(live):
        if len(chunks) > _MAX_LOCKSTEP and len(live) < _FEW_LIVE:
            raise IrregularError(f"records with more than {_MAX_LOCKSTEP} fields")
        # While every record still has fields (the common case), skip the gathers by index.
        p = pos if everyone else pos[live]
        e = end if everyone else end[live]
        step = _step_fast(buf, p, e)
        num, wt, value, payload, stop = step if step is not None else _step(buf, p, e)
        chunks.append((live, num, wt, value, payload, stop))
        more = stop < e
        if everyone:
            everyone = bool(more.all())
            # ``stop`` is also kept in ``chunks``: copy before positions are updated in place.
            pos = stop if everyone else stop.copy()
            if not everyone:
                live = live[more]
        else:
            pos[live] = stop
            live = live[more]
    if not chunks:
        z = np.zeros(0, np.int64)
        return Fields(z, z, z, z.view(np.uint64), z, z)
    rec, num, wt, value, payload, stop = (np.concatenate(c) for c in zip(*chunks, strict=True))
    nth = np.repeat(np.arange(len(chunks), dtype=np.int64), [len(c[0]) for c in chunks])
    # Place each field at (its record's first slot + its position in the record): record-major
    # order without sorting.
    first = np.zeros(len(start), np.int64)
    np.cumsum(np.bincount(rec, minlength=len(start))[:-1], out=first[1:])
    order = np.empty(len(rec), np.int64)
    order[first[rec] + nth] = np.arange(len(rec), dtype=np.int64)
    return Fields(rec[order], num[order], wt[order], value[order].view(np.uint64), payload[order], stop[order])


U8Array = npt.NDArray[np.uint8]


def _classify(buf: U8Array, start: IntArray, end: IntArray) -> tuple[U8Array, U8Array, IntArray, IntArray, U64Array]:
    """Check each AnyValue payload [start, end) holds exactly one field in shortest form.

    Returns class, wire tag, and the field's payload range and varint (length or value).
    """
    present = end > start
    tag = np.where(present, buf[start], 0).astype(np.uint8)
    cls = np.where(present, _CLS_OF_TAG[tag], Cls.EMPTY).astype(np.uint8)
    if (cls == 255).any():
        raise IrregularError("AnyValue with an unknown field")
    delimited = _LENGTH_DELIMITED[tag] & present
    is_varint = _VARINT_TAG[tag] & present
    double = (tag == _TAG_DOUBLE) & present
    # Doubles carry no varint; reading one there would only cost time on random bytes.
    has_varint = np.flatnonzero(delimited | is_varint)
    value = np.zeros(len(start), np.uint64)
    inner = start.copy()
    good = ~present | (double & (end - start == 9))
    if len(has_varint):
        v, size, ok = varints(buf, start[has_varint] + 1, end[has_varint])
        value[has_varint] = v
        body = start[has_varint] + 1 + size
        inner[has_varint] = np.where(delimited[has_varint], body, start[has_varint] + 1)
        stop = np.where(delimited[has_varint], body + np.minimum(v, np.uint64(len(buf))).astype(np.int64), body)
        good[has_varint] = ok & (stop == end[has_varint])
    if not good.all():
        raise IrregularError("AnyValue not in its shortest single-field form")
    inner[double] += 1
    return cls, tag, inner, end, value


class WireOthers:
    """Arrays, key-value lists and bytes left as byte ranges in the buffer until asked for."""

    def __init__(self, buffer: Buffer, tags: npt.NDArray[np.uint8], start: IntArray, end: IntArray) -> None:
        self.buffer = buffer
        self.tags = tags
        self.start = start
        self.end = end
        self._messages: dict[int, AnyValue] = {}

    def __len__(self) -> int:
        return len(self.tags)

    def message(self, i: int) -> AnyValue:
        """The i-th value, parsed on first use."""
        hit = self._messages.get(i)
        if hit is None:
            blob = self.buffer.data[int(self.start[i]) : int(self.end[i])]
            tag = int(self.tags[i])
            try:
                if tag == _TAG_ARRAY:
                    hit = AnyValue(array_value=ArrayValue.FromString(blob))
                elif tag == _TAG_KVLIST:
                    hit = AnyValue(kvlist_value=KeyValueList.FromString(blob))
                else:
                    hit = AnyValue(bytes_value=blob)
            except ProtobufDecodeError as exc:
                raise IrregularError(str(exc)) from exc
            self._messages[i] = hit
        return hit

    def string_lists(self, idx: IntArray) -> tuple[BoolArray, pa.Array]:
        """Arrays among the values at ``idx`` as lists of element text; string arrays in one vectorised pass."""
        is_array = self.tags[idx] == _TAG_ARRAY
        arrays = idx[is_array]
        buf = self.buffer.array
        f = scan(buf, self.start[arrays], self.end[arrays])
        sel = f.where(1, WT_LEN)
        if len(sel) != len(f.num):
            raise IrregularError("ArrayValue with an unknown field")
        cls, _tag, inner, inner_end, _value = _classify(buf, f.start[sel], f.end[sel])
        if (cls != Cls.STRING).any():
            return string_lists_of(self, idx)  # mixed arrays: rare, per object
        offsets = np.zeros(len(arrays) + 1, np.int32)
        np.cumsum(np.bincount(f.rec[sel], minlength=len(arrays)), out=offsets[1:])
        lists = pa.ListArray.from_arrays(pa.array(offsets), self.buffer.strings(inner, inner_end))
        return is_array, lists.cast(STRING_LIST)


def _values(buffer: Buffer, start: IntArray, end: IntArray) -> Values:
    buf = buffer.array
    cls, tag, inner, inner_end, value = _classify(buf, start, end)
    is_string = cls == Cls.STRING
    strings = buffer.strings(inner[is_string], inner_end[is_string])
    is_double = cls == Cls.DOUBLE
    doubles = buffer.fixed64(inner[is_double]).view(np.float64) if is_double.any() else np.zeros(0, np.float64)
    is_other = cls == Cls.OTHER
    return Values(
        cls=cls,
        strings=strings,
        bools=value[cls == Cls.BOOL] != 0,
        ints=value[cls == Cls.INT].view(np.int64),
        doubles=doubles,
        others=WireOthers(buffer, tag[is_other], inner[is_other], inner_end[is_other]),
    )


def values(buffer: Buffer, start: IntArray, end: IntArray) -> Values:
    """The AnyValue payloads [start, end) (empty ranges are empty values) as ``Values``."""
    return _values(buffer, start, end)


def keyvalues(buffer: Buffer, start: IntArray, end: IntArray, counts: IntArray) -> Attributes:
    """The KeyValue payloads [start, end), ``counts[i]`` per owner, as ``Attributes``."""
    buf = buffer.array
    ok = (end - start >= 4) & (buf[start] == _TAG_KEY)
    klen, ksize, kok = varints(buf, start + 1, end)
    key_start = start + 1 + ksize
    key_end = key_start + np.minimum(klen, np.uint64(len(buf))).astype(np.int64)
    ok &= kok & (key_end < end)
    ok &= buf[np.minimum(key_end, len(buf) - 1)] == _TAG_VALUE
    vlen, vsize, vok = varints(buf, key_end + 1, end)
    value_start = key_end + 1 + vsize
    ok &= vok & (value_start + np.minimum(vlen, np.uint64(len(buf))).astype(np.int64) == end)
    if not ok.all():
        # SDKs write key then value, once each; anything else (an empty key left out, a missing
        # value, fields repeated) has protobuf semantics the exact path implements.
        raise IrregularError("KeyValue not in key-then-value form")
    return Attributes(counts, buffer.strings(key_start, key_end), _values(buffer, value_start, end))


@dataclass
class Layout:
    """Where the records of an OTLP traces or logs export request are, found without parsing them.

    Both requests nest alike: the request's field 1 holds resource blocks (``ResourceSpans`` /
    ``ResourceLogs``), each a resource (1), scope blocks (2) and a schema URL (3); each scope block a
    scope (1), the records (2) and a schema URL (3).
    """

    resources: list[Any]  # each resource block's Resource (empty if absent)
    scope_resource: IntArray  # per scope block: its resource block
    scope_first: IntArray  # per scope block: its index among its resource block's scope blocks
    record_scope: IntArray  # per record: its scope block
    start: IntArray  # per record: where its bytes start in the payload
    end: IntArray  # per record: where they end


def _varint(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    """The varint at ``pos`` (in shortest form, before ``limit``) and the position after it."""
    value = shift = 0
    for k in range(10):
        if pos + k >= limit:
            break
        byte = data[pos + k]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if (k and not byte) or (k == 9 and byte > 1):
                break  # longer than necessary, or past 64 bits: the exact path decides
            return value, pos + k + 1
    raise IrregularError("malformed or unsupported varint")


def _walk(data: bytes, a: int, b: int) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """The fields of the message at [a, b): the ranges of its field 2 (length-delimited), and its other
    fields as (number, start, end) — length-delimited ones only; another wire type of fields 1–3 is
    IrregularError. One field after another: a message here holds records by the thousand, too many
    for the lock-step ``scan``; the loop is short for the common case (tag 0x12, short length)."""
    starts: list[int] = []
    ends: list[int] = []
    others: list[tuple[int, int, int]] = []
    add_start, add_end = starts.append, ends.append
    pos = a
    while pos < b:
        if data[pos] == 0x12:  # field 2, length-delimited: the records
            length = data[pos + 1]
            if length < 0x80:
                start = pos + 2
            else:
                length, start = _varint(data, pos + 1, b)
            pos = start + length
            if pos > b:
                raise IrregularError("a field runs past the end of its message")
            add_start(start)
            add_end(pos)
            continue
        tag, pos = _varint(data, pos, b)
        number, wiretype = tag >> 3, tag & 7
        if number == 0 or tag > 0xFFFFFFFF:
            raise IrregularError("invalid field number")
        if wiretype == WT_LEN:
            length, start = _varint(data, pos, b)
            pos = start + length
            others.append((number, start, pos))
        elif number <= 3:
            raise IrregularError(f"field {number} with an unexpected wire type")
        elif wiretype == WT_VARINT:
            pos = _varint(data, pos, b)[1]
        elif wiretype in (WT_FIXED64, WT_FIXED32):
            pos += 8 if wiretype == WT_FIXED64 else 4
        else:
            raise IrregularError("a field of a wire type the fast path does not take")
        if pos > b:
            raise IrregularError("a field runs past the end of its message")
    return starts, ends, others


def _singular(others: list[tuple[int, int, int]], number: int) -> tuple[int, int] | None:
    """The range of the singular field ``number`` among ``others``; sent twice is IrregularError (merged)."""
    found = [(start, end) for n, start, end in others if n == number]
    if len(found) > 1:
        raise IrregularError(f"field {number} repeated in one message")
    return found[0] if found else None


def layout(payload: bytes, resource_cls: Any, scope_cls: Any) -> Layout:
    """The request's ``Layout``; the resources and scopes are checked with protobuf (``resource_cls`` and
    ``scope_cls``), the schema URLs as UTF-8, so that only the records are left to check. Anything
    protobuf would read differently (a resource or scope sent twice, an unusual encoding) or
    reject is IrregularError: the exact path decides it. Nothing of the payload is copied."""
    try:
        _, _, top = _walk(payload, 0, len(payload))
        resources: list[Any] = []
        scope_resource: list[int] = []
        scope_first: list[int] = []
        record_scope: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for a, b in [(start, end) for number, start, end in top if number == 1]:
            scope_starts, scope_ends, fields = _walk(payload, a, b)
            resource = _singular(fields, 1)
            resources.append(resource_cls.FromString(payload[resource[0] : resource[1]]) if resource
                             else resource_cls())
            _check_text(payload, _singular(fields, 3))
            for s, (c, d) in enumerate(zip(scope_starts, scope_ends, strict=True)):
                record_starts, record_ends, scope_fields = _walk(payload, c, d)
                scope = _singular(scope_fields, 1)
                if scope:
                    scope_cls.FromString(payload[scope[0] : scope[1]])
                _check_text(payload, _singular(scope_fields, 3))
                record_scope.extend([len(scope_resource)] * len(record_starts))
                scope_resource.append(len(resources) - 1)
                scope_first.append(s)
                starts.extend(record_starts)
                ends.extend(record_ends)
    except IndexError as exc:  # a read past the end of the payload: only malformed input does that
        raise IrregularError("a field runs past the end of the request") from exc
    except (UnicodeDecodeError, ProtobufDecodeError, RecursionError) as exc:
        raise IrregularError(str(exc) or type(exc).__name__) from exc

    def ints(values: list[int]) -> IntArray:
        return np.fromiter(values, np.int64, len(values))

    return Layout(resources, ints(scope_resource), ints(scope_first), ints(record_scope), ints(starts), ints(ends))


def _check_text(payload: bytes, where: tuple[int, int] | None) -> None:
    """A string field must be valid UTF-8, as protobuf requires; raises UnicodeDecodeError."""
    if where is not None:
        str(memoryview(payload)[where[0] : where[1]], "utf-8")
