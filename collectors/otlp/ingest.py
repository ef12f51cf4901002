"""What every OTLP transport does with a request body: decode, hand to the consumer, count, classify.

The transports (HTTP, gRPC) only map an ``Outcome`` to their own status codes, so both answer the
same input the same way and count it under the same reason. Records the decoder rejects and rows
the pipeline drops are reported as OTLP partial success (HTTP 200 / gRPC OK with
``rejected_<records>`` and a message naming the first few and why): nothing is acknowledged that
will not be stored. Changes to kept records (replaced times, truncated attributes) are told to the
client as a partial-success warning (zero rejected, a message), as the OTLP specification allows.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collectors.otlp.decode import NOUNS, Decoded, DecodeError, decode_request
from collectors.otlp.limits import DEFAULT_LIMITS, ORIGINAL_TIME, RecordLimits
from collectors.otlp.otlp_json import decode_json_request
from sovtel.component import Accepted, Backpressure, Consumer, Rejected
from sovtel.records import Batch, Signal
from sovtel.telemetry import ComponentTelemetry

log = logging.getLogger("sovtel.collectors.otlp")


class Encoding(enum.Enum):
    """How a request body is encoded."""

    PROTOBUF = "protobuf"
    JSON = "json"


class Status(enum.Enum):
    """How a request ended, independent of transport."""

    OK = "ok"
    BAD_DATA = "bad_data"  # not a valid export request
    BACKPRESSURE = "backpressure"  # retry later
    REJECTED = "rejected"  # the pipeline refused the data for good
    NO_PIPELINE = "no_pipeline"  # this receiver is not wired to the signal
    UNAUTHENTICATED = "unauthenticated"  # no valid bearer token
    FORBIDDEN = "tenant_mismatch"  # records claim a tenant other than the token's
    INTERNAL = "internal_error"


@dataclass(frozen=True)
class Outcome:
    """The result of one export request.

    ``dropped`` counts the records received that will not be stored (rejected by the decoder or
    dropped by the pipeline); ``message`` says which and why, or warns of changes to kept records.
    """

    status: Status
    accepted: int = 0
    dropped: int = 0
    message: str = ""


class Ingest:
    """Decodes export requests and hands them to the consumers; called on transport threads."""

    def __init__(
        self,
        telemetry: ComponentTelemetry,
        consumers: Mapping[Signal, Consumer],
        meta: Mapping[str, str] | None = None,
        limits: RecordLimits = DEFAULT_LIMITS,
    ) -> None:
        self.telemetry = telemetry
        self.consumers = dict(consumers)
        self.meta = dict(meta or {})
        self.limits = limits

    def refused(self, reason: str) -> None:
        """Count a request refused before it reached ``handle`` (transport-level problems)."""
        self.telemetry.refused(reason)

    def _refuse(self, status: Status, message: str) -> Outcome:
        self.telemetry.refused(status.value)
        return Outcome(status, message=message)

    def handle(
        self, signal: Signal, body: bytes, encoding: Encoding, transport: str, tenant: str | None = None
    ) -> Outcome:
        """Decode ``body`` and give it to the signal's consumer; never raises.

        With ``tenant`` (the authenticated token's), records without a tenant get it and a request
        with records of another tenant is refused whole: a client cannot write as another tenant.
        """
        consumer = self.consumers.get(signal)
        if consumer is None:
            return self._refuse(Status.NO_PIPELINE, f"this receiver has no {signal.value} pipeline")
        received_ns = time.time_ns()
        try:
            if encoding is Encoding.PROTOBUF:
                decoded = decode_request(signal, body, limits=self.limits, received_ns=received_ns)
            else:
                decoded = decode_json_request(signal, body, limits=self.limits, received_ns=received_ns)
        except DecodeError as exc:
            return self._refuse(Status.BAD_DATA, str(exc))
        except Exception:  # a decoder bug must cost one request, not the server
            log.exception("decoding a %s %s request failed unexpectedly", transport, signal.value)
            return self._refuse(Status.INTERNAL, "internal error while decoding the request")
        table = decoded.table
        rows = table.num_rows
        if rows == 0:
            return Outcome(Status.OK)
        meta = {**self.meta, "transport": transport, "encoding": encoding.value}
        if tenant is not None:
            try:
                table = bind_tenant(table, tenant)
            except TenantMismatch as exc:
                return self._refuse(Status.FORBIDDEN, str(exc))
            meta["tenant"] = tenant
        batch = Batch(signal, table, meta)
        try:
            result = consumer.consume(batch)
        except Backpressure as exc:
            return self._refuse(Status.BACKPRESSURE, f"pipeline is full, retry later ({exc})")
        except Rejected as exc:
            return self._refuse(Status.REJECTED, f"pipeline refused the data: {exc}")
        except Exception:
            log.exception("consumer of %s failed", signal.value)
            return self._refuse(Status.INTERNAL, "internal error in the pipeline")
        # Counted only now: a request refused above is sent again, and would be counted twice.
        self.telemetry.received(signal.value, rows)
        for reason, n in decoded.rejected_by.items():
            self.telemetry.dropped(signal.value, n, reason)
        for reason, n in decoded.removed.items():
            self.telemetry.removed(signal.value, n, reason)
        dropped = min(max(result.dropped, 0), rows)
        return Outcome(
            Status.OK,
            accepted=rows - dropped,
            dropped=decoded.rejected + dropped,
            message=partial_success_message(signal, decoded, result, dropped),
        )


def partial_success_message(signal: Signal, decoded: Decoded, result: Accepted, dropped: int) -> str:
    """What the client is told: records rejected (the first few, where and why), rows the pipeline
    dropped (by reason), and changes made to kept records; empty if none."""
    noun = NOUNS[signal]
    parts = []
    if decoded.rejected:
        parts.append(decoded.summary(noun))
    if dropped:
        why = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.reasons.items()))
        parts.append(
            f"{dropped} of {decoded.table.num_rows} {noun} were dropped by the pipeline ({why or 'no reason given'})"
        )
    if decoded.removed:
        changes = ", ".join(f"{reason}: {n}" for reason, n in sorted(decoded.removed.items()))
        note = f"; replaced times keep the original in {ORIGINAL_TIME}" if any(
            r.startswith("timestamp_clamped") for r in decoded.removed) else ""
        parts.append(f"accepted with changes ({changes}{note})")
    return "; ".join(parts)


class TenantMismatch(Exception):
    """Records claim a tenant other than the authenticated one."""


def bind_tenant(table: pa.Table, tenant: str) -> pa.Table:
    """``table`` with every empty ``tenant_id`` set to ``tenant``; raises TenantMismatch if any row names another."""
    if "tenant_id" not in table.column_names:
        return table
    col = table.column("tenant_id")
    empty = pc.fill_null(pc.equal(pc.binary_length(col), 0), True)
    other = pc.and_(pc.invert(empty), pc.not_equal(col, pa.scalar(tenant)))
    n_other = int(pc.sum(other).as_py() or 0)
    if n_other:
        raise TenantMismatch(
            f"{n_other} record(s) name a tenant other than the token's; a token writes as its own tenant only"
        )
    i = table.schema.get_field_index("tenant_id")
    column = pa.repeat(pa.scalar(tenant, pa.string()), table.num_rows)
    return table.set_column(i, table.schema.field("tenant_id"), column)


_RESPONSES: dict[Signal, tuple[type[Message], str]] = {
    Signal.TRACES: (ExportTraceServiceResponse, "rejected_spans"),
    Signal.LOGS: (ExportLogsServiceResponse, "rejected_log_records"),
    Signal.METRICS: (ExportMetricsServiceResponse, "rejected_data_points"),
}


def export_response(signal: Signal, outcome: Outcome) -> Message:
    """The Export*ServiceResponse for a successful request: partial_success if records were rejected, or
    (zero rejected) to warn of changes made to the records kept."""
    cls, rejected_field = _RESPONSES[signal]
    response = cls()
    if outcome.dropped or outcome.message:
        partial = response.partial_success  # type: ignore[attr-defined]
        setattr(partial, rejected_field, outcome.dropped)
        partial.error_message = outcome.message
    return response
