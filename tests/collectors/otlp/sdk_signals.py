"""Logs and metrics sent with the real OpenTelemetry SDK, for the transport tests."""

from __future__ import annotations

from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

RESOURCE = Resource.create({"service.name": "chat-api", "host.name": "gpu-1"})


def emit_logs(exporter: Any, n: int) -> None:
    """Emit ``n`` log records with the SDK's Logs API into ``exporter``."""
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
    logger = provider.get_logger("sovtel-tests")
    for i in range(n):
        logger.emit(
            body=f"request {i} served",
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={"user.id": f"user-{i}"},
        )
    provider.shutdown()


def emit_metrics(exporter: Any) -> None:
    """Record a GenAI token histogram and a counter, exported once at shutdown."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    meter = provider.get_meter("sovtel-tests")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    tokens.record(120, {"gen_ai.token.type": "input", "sovtel.tenant": "acme"})
    tokens.record(30, {"gen_ai.token.type": "output", "sovtel.tenant": "acme"})
    meter.create_counter("requests").add(2, {"route": "/chat"})
    provider.shutdown()
