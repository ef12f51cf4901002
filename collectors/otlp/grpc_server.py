"""OTLP/gRPC: the TraceService, MetricsService and LogsService Export methods.

The servicers subclass the generated ones but are registered with raw-bytes handlers instead of
``add_*Servicer_to_server``: we decode the request ourselves, so an undecodable message gets
INVALID_ARGUMENT with a reason (grpc's own deserializer would answer INTERNAL), and gRPC shares the
columnar decode path with HTTP without building protobuf objects first.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collectors.otlp.auth import Authenticator
from collectors.otlp.config import DEFAULT_MAX_INFLIGHT_BYTES, GRPC_MAX_MESSAGE_BYTES, GrpcProtocol, split_endpoint
from collectors.otlp.inflight import InflightBudget
from collectors.otlp.ingest import Encoding, Ingest, Status, export_response
from sovtel.records import Signal

log = logging.getLogger("sovtel.collectors.otlp.grpc")

_GRPC_CODE_OF = {
    Status.BAD_DATA: grpc.StatusCode.INVALID_ARGUMENT,
    Status.REJECTED: grpc.StatusCode.FAILED_PRECONDITION,
    Status.BACKPRESSURE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Status.NO_PIPELINE: grpc.StatusCode.UNIMPLEMENTED,
    Status.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Status.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Status.INTERNAL: grpc.StatusCode.INTERNAL,
}


class _Export:
    """The Export method of one signal's service, over raw request bytes."""

    def __init__(
        self,
        signal: Signal,
        ingest: Ingest,
        max_message_bytes: int,
        retry_after_s: int,
        authenticator: Authenticator | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.budget = budget if budget is not None else InflightBudget(DEFAULT_MAX_INFLIGHT_BYTES)
        self.signal = signal
        self.ingest = ingest
        self.max_message_bytes = max_message_bytes
        self.retry_after_s = retry_after_s

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if len(request) > self.max_message_bytes:
            self.ingest.refused("too_large")
            self._fail(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"message of {len(request)} bytes exceeds max_message_bytes ({self.max_message_bytes})",
            )
            return b""
        tenant: str | None = None
        if self.authenticator is not None:
            metadata = dict(context.invocation_metadata() or ())
            tenant = self.authenticator.tenant_for(metadata.get("authorization"))
            if tenant is None:
                self.ingest.refused("unauthenticated")
                self._fail(
                    context,
                    grpc.StatusCode.UNAUTHENTICATED,
                    "a valid bearer token is required (metadata authorization: Bearer <token>)",
                )
                return b""
        reservation = self.budget.try_reserve(len(request))
        if reservation is None:
            # grpc already holds the message; refusing it keeps its decoding (a multiple of its size)
            # from adding to what is being decoded, and the client retries after the back-off.
            self.ingest.refused("inflight_bytes")
            self._fail(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the receiver is decoding {self.budget.used} bytes of requests "
                f"(max_inflight_bytes {self.budget.limit}); retry later",
                retry_after_s=self.retry_after_s,
            )
            return b""
        try:
            outcome = self.ingest.handle(self.signal, request, Encoding.PROTOBUF, "grpc", tenant)
        finally:
            reservation.release()
        if outcome.status is Status.OK:
            return export_response(self.signal, outcome).SerializeToString()  # type: ignore[no-any-return]
        code = _GRPC_CODE_OF[outcome.status]
        retry = outcome.status is Status.BACKPRESSURE
        self._fail(context, code, outcome.message, retry_after_s=self.retry_after_s if retry else None)
        return b""

    @staticmethod
    def _fail(
        context: grpc.ServicerContext, code: grpc.StatusCode, message: str, retry_after_s: int | None = None
    ) -> None:
        if retry_after_s is not None:
            # RetryInfo tells OTLP exporters how long to back off: the Python exporter reads the
            # retryinfo-bin trailer, others the details of the rich status.
            info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after_s))
            detail = status_pb2.Status(code=code.value[0], message=message)
            detail.details.add().Pack(info)
            context.set_trailing_metadata(
                (
                    ("google.rpc.retryinfo-bin", info.SerializeToString()),
                    ("grpc-status-details-bin", detail.SerializeToString()),
                )
            )
        context.set_code(code)
        context.set_details(message)


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """TraceService.Export."""

    def __init__(self, export: _Export) -> None:
        self.export = export

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - generated name
        """Receive spans."""
        return self.export(request, context)


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    """MetricsService.Export."""

    def __init__(self, export: _Export) -> None:
        self.export = export

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - generated name
        """Receive metric data points."""
        return self.export(request, context)


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    """LogsService.Export."""

    def __init__(self, export: _Export) -> None:
        self.export = export

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - generated name
        """Receive log records."""
        return self.export(request, context)


_SERVICES: tuple[tuple[Signal, Any, type[Any]], ...] = (
    (Signal.TRACES, trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"], TraceService),
    (Signal.METRICS, metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"], MetricsService),
    (Signal.LOGS, logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"], LogsService),
)


class OtlpGrpcServer:
    """The OTLP/gRPC listener: binds at ``start`` (fail fast), serves on grpc's threads."""

    def __init__(
        self,
        settings: GrpcProtocol,
        ingest: Ingest,
        retry_after_s: int,
        authenticator: Authenticator | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.retry_after_s = retry_after_s
        self.authenticator = authenticator
        self.budget = budget if budget is not None else InflightBudget(DEFAULT_MAX_INFLIGHT_BYTES)
        self._server: grpc.Server | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Bind and serve; returns the bound port. Raises OSError if the endpoint cannot be bound."""
        limit = self.settings.max_message_bytes
        # grpc core refuses anything over its own limit before we see it (uncounted), so it gets
        # headroom and the configured limit is enforced, and counted, in _Export.
        hard_limit = min(2 * limit, GRPC_MAX_MESSAGE_BYTES)
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.settings.max_workers, thread_name_prefix="otlp-grpc"),
            options=[("grpc.max_receive_message_length", hard_limit), ("grpc.so_reuseport", 0)],
        )
        handlers = []
        for signal, descriptor, servicer_cls in _SERVICES:
            servicer = servicer_cls(
                _Export(signal, self.ingest, limit, self.retry_after_s, self.authenticator, self.budget)
            )
            method = grpc.unary_unary_rpc_method_handler(
                servicer.Export, request_deserializer=None, response_serializer=None
            )
            handlers.append(grpc.method_handlers_generic_handler(descriptor.full_name, {"Export": method}))
        server.add_generic_rpc_handlers(tuple(handlers))
        host, port = split_endpoint(self.settings.endpoint)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        credentials = None
        if self.settings.tls is not None:
            cert, key = self.settings.tls.load()
            credentials = grpc.ssl_server_credentials([(key, cert)])
        try:
            if credentials is not None:
                bound = server.add_secure_port(address, credentials)
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            bound = 0
            log.debug("grpc bind failed: %s", exc)
        if not bound:
            server.stop(None)
            raise OSError(f"cannot listen for OTLP/gRPC on {self.settings.endpoint} (address in use or not local)")
        server.start()
        self._server = server
        self.port = int(bound)
        return self.port

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Stop serving (in-flight calls get ``grace_s`` to finish); idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace_s).wait()
