"""The exporters' queues: buffers in memory or on disk (SQLite), the worker that drains them, dedup tokens."""

from sovtel.queue.buffer import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_ROWS,
    BatchBuffer,
    MemoryBuffer,
    QueueConfig,
    QueueSettings,
    Taken,
    queue_config,
)
from sovtel.queue.dedup import DEDUP_TOKEN, IDENTITY_COLUMNS, dedup_token, rows_token, stored_group_token
from sovtel.queue.exporter import QueuedExporter
from sovtel.queue.sqlite import DurableBuffer, QueueInUseError, open_buffer, queue_file, queued_rows

__all__ = [
    "DEDUP_TOKEN",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MAX_DELAY_S",
    "DEFAULT_QUEUE_BYTES",
    "DEFAULT_QUEUE_ROWS",
    "IDENTITY_COLUMNS",
    "BatchBuffer",
    "DurableBuffer",
    "MemoryBuffer",
    "QueueConfig",
    "QueueInUseError",
    "QueueSettings",
    "QueuedExporter",
    "Taken",
    "dedup_token",
    "open_buffer",
    "queue_config",
    "queue_file",
    "queued_rows",
    "rows_token",
    "stored_group_token",
]
