"""In-process OpenTelemetry SDK exporter: a Python inference app feeds a pipeline without a network hop.

The spans take the same path as OTLP over the network (encoded to OTLP protobuf, decoded columnar),
so the pipeline sees identical batches either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from collectors.otlp.decode import decode_traces
from sovtel.component import Backpressure, Consumer
from sovtel.records import Batch, Signal

log = logging.getLogger("sovtel.collectors.sdk")

DEFAULT_RETRY_TIMEOUT_S = 0.0


class SovtelSpanExporter(SpanExporter):
    """Exports SDK spans straight into a sovtel ``Consumer`` (e.g. a pipeline's entry).

    ``export`` never raises: a full pipeline (Backpressure) or any failure is
    ``SpanExportResult.FAILURE``. With ``retry_timeout_s`` > 0 a Backpressure refusal is retried
    with exponential back-off for up to that long first, as the OTLP exporters do for 429.
    Called on the span processor's thread; blocks at most ``retry_timeout_s``.
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        retry_timeout_s: float = DEFAULT_RETRY_TIMEOUT_S,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.consumer = consumer
        self.retry_timeout_s = retry_timeout_s
        self.meta = {"transport": "sdk", **(meta or {})}
        self._stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode, decode and hand the spans to the consumer."""
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            table = decode_traces(encode_spans(spans).SerializeToString())
        except Exception:  # an exporter must not raise into the SDK
            log.exception("could not encode %d spans", len(spans))
            return SpanExportResult.FAILURE
        batch = Batch(Signal.TRACES, table, self.meta)
        deadline = time.monotonic() + self.retry_timeout_s
        delay = 0.05
        while True:
            try:
                self.consumer.consume(batch)
                return SpanExportResult.SUCCESS
            except Backpressure as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped.is_set():
                    log.warning("pipeline is full; %d spans not exported (%s)", len(spans), exc)
                    return SpanExportResult.FAILURE
                self._stopped.wait(min(delay, remaining))
                delay = min(delay * 2, 1.0)
            except Exception:
                log.exception("pipeline refused %d spans", len(spans))
                return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Refuse further exports and cut short any back-off in progress."""
        self._stopped.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
