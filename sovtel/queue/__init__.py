"""The exporters' queues: buffers in memory or on disk (SQLite), the worker that drains them, dedup tokens,
and the disk watermark and reserve of the durable queue."""

from sovtel.queue.buffer import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_ROWS,
    DEFAULT_RESERVE_BYTES,
    BatchBuffer,
    MemoryBuffer,
    QueueConfig,
    QueueSettings,
    Taken,
    queue_config,
)
from sovtel.queue.dedup import DEDUP_TOKEN, IDENTITY_COLUMNS, dedup_token, rows_token, stored_group_token
from sovtel.queue.disk import QueueRefusal, disk_free, is_disk_error
from sovtel.queue.exporter import QueuedExporter
from sovtel.queue.sqlite import DurableBuffer, QueueInUseError, open_buffer, queue_file, queued_rows

__all__ = [
    "DEDUP_TOKEN",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MAX_DELAY_S",
    "DEFAULT_QUEUE_BYTES",
    "DEFAULT_QUEUE_ROWS",
    "DEFAULT_RESERVE_BYTES",
    "IDENTITY_COLUMNS",
    "BatchBuffer",
    "DurableBuffer",
    "MemoryBuffer",
    "QueueConfig",
    "QueueInUseError",
    "QueueRefusal",
    "QueueSettings",
    "QueuedExporter",
    "Taken",
    "dedup_token",
    "disk_free",
    "is_disk_error",
    "open_buffer",
    "queue_config",
    "queue_file",
    "queued_rows",
    "rows_token",
    "stored_group_token",
]
