"""Dedup tokens: a name for a group of rows that stays the same each time the group is sent again.

A sink that inserts idempotently (ClickHouse's ``insert_deduplication_token``) skips a group whose
token it already stored, so replaying a group after a crash or a lost answer is harmless.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

import pyarrow as pa

from sovtel.records import Batch, Signal

# The ``Batch.meta`` key on which a queue hands a group's token to the sink.
DEDUP_TOKEN = "dedup_token"  # noqa: S105 - a meta key, not a secret

# Columns that identify a record. Span ids are unique by construction; logs and metrics have no
# such key, so all their columns count (None).
IDENTITY_COLUMNS: Mapping[Signal, tuple[str, ...] | None] = {
    Signal.TRACES: ("timestamp", "trace_id", "span_id"),
    Signal.LOGS: None,
    Signal.METRICS: None,
}


def identity_columns(signal: Signal, table: pa.Table) -> tuple[str, ...] | None:
    """The columns of ``table`` that identify its records, or None when every column counts."""
    columns = IDENTITY_COLUMNS[signal]
    if columns is None or not all(c in table.column_names for c in columns):
        return None
    if any(pa.types.is_nested(table.schema.field(c).type) for c in columns):
        return None
    return columns


def stored_group_token(signal: Signal, payloads: Sequence[bytes], tables: Sequence[pa.Table]) -> str:
    """The token of a group the queue stored: ``payloads`` (Arrow IPC streams) and ``tables``, their zero-copy reading.

    Nothing is serialised again: with identity columns, their Arrow buffers — slices of the stored
    bytes — are hashed; otherwise every column counts and the payloads are hashed whole. The token
    follows the stored layout, which a replay of the persisted group reproduces byte for byte.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"stored:{signal.value}:{sum(t.num_rows for t in tables)}:".encode())
    for payload, table in zip(payloads, tables, strict=True):
        columns = identity_columns(signal, table)
        if columns is None:
            digest.update(struct.pack("<q", len(payload)))
            digest.update(payload)
            continue
        for name in columns:
            column = table.column(name)
            digest.update(struct.pack("<q", column.num_chunks))
            for chunk in column.chunks:
                _hash_array(digest, chunk)
    return f"sovtel-{signal.value}-{digest.hexdigest()}"


def _hash_array(digest: hashlib.blake2b, array: pa.Array) -> None:
    # Lengths frame every buffer, so different rows can never hash as the same byte stream.
    digest.update(struct.pack("<qqq", len(array), array.offset, array.null_count))
    for buf in array.buffers():
        if buf is None:
            digest.update(struct.pack("<q", -1))
        else:
            digest.update(struct.pack("<q", buf.size))
            digest.update(memoryview(buf))


def rows_token(batch: Batch) -> str:
    """A token from the rows themselves, for a batch the queue never stored (an in-memory queue).

    It hashes the identity columns in a canonical layout (one chunk, Arrow IPC), so the same rows
    give the same token however the batch was split or merged on the way.
    """
    columns = identity_columns(batch.signal, batch.table)
    table = batch.table if columns is None else batch.table.select(list(columns))
    table = table.combine_chunks()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{batch.signal.value}:{table.num_rows}:".encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(memoryview(sink.getvalue()))
    return f"sovtel-{batch.signal.value}-{digest.hexdigest()}"


def dedup_token(batch: Batch) -> str:
    """The batch's dedup token: the one its queue handed along, else one from its rows."""
    return batch.meta.get(DEDUP_TOKEN) or rows_token(batch)
