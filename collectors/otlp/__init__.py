"""Receiver ``otlp``: OTLP over gRPC and HTTP (protobuf or JSON) into columnar batches.

``create(ctx, Config(...))`` returns an ``OtlpReceiver``; ``start(consumers)`` binds the endpoints
(port 0 picks a free port, exposed as ``grpc_port`` / ``http_port``) and ``shutdown()`` stops them.
"""

from __future__ import annotations

import logging
import threading

from collectors.otlp.auth import Authenticator
from collectors.otlp.config import Config, GrpcProtocol, HttpProtocol, Protocols
from collectors.otlp.decode import DecodeError, decode_logs, decode_metrics, decode_traces
from collectors.otlp.grpc_server import OtlpGrpcServer
from collectors.otlp.http_server import OtlpHttpServer
from collectors.otlp.inflight import InflightBudget
from collectors.otlp.ingest import Ingest
from sovtel.component import ComponentContext, Consumer
from sovtel.records import Signal

log = logging.getLogger("sovtel.collectors.otlp")

__all__ = [
    "Config",
    "DecodeError",
    "GrpcProtocol",
    "HttpProtocol",
    "OtlpReceiver",
    "Protocols",
    "create",
    "decode_logs",
    "decode_metrics",
    "decode_traces",
]


class OtlpReceiver:
    """Serves OTLP/gRPC and OTLP/HTTP and hands decoded batches to the consumer of each signal."""

    def __init__(self, ctx: ComponentContext, config: Config) -> None:
        self.ctx = ctx
        self.config = config
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._grpc: OtlpGrpcServer | None = None
        self._http: OtlpHttpServer | None = None
        self._lock = threading.Lock()
        # One budget for both transports: it bounds the memory of the process, not of a port.
        self.budget = InflightBudget(config.max_inflight_bytes)

    def start(self, consumers: dict[Signal, Consumer]) -> None:
        """Bind the enabled endpoints and serve; raises (having released everything) if one cannot be bound."""
        with self._lock:
            if self._grpc is not None or self._http is not None:
                raise RuntimeError(f"receiver {self.ctx.name} is already started")
            ingest = Ingest(self.ctx.telemetry, consumers, {"receiver": self.ctx.name, "node": self.ctx.node},
                            limits=self.config.limits)
            protocols = self.config.protocols
            retry_after = self.config.retry_after_s
            auth = None
            if self.config.auth is not None:
                auth = Authenticator.from_settings(self.config.auth, self.ctx.resolve_secret)
            try:
                if protocols.http.enabled:
                    self._http = OtlpHttpServer(protocols.http, ingest, retry_after, auth, self.budget)
                    self.http_port = self._http.start()
                if protocols.grpc.enabled:
                    self._grpc = OtlpGrpcServer(protocols.grpc, ingest, retry_after, auth, self.budget)
                    self.grpc_port = self._grpc.start()
            except BaseException:
                self._stop()
                raise
            log.info("receiver %s listening: grpc port %s, http port %s", self.ctx.name, self.grpc_port, self.http_port)

    def shutdown(self) -> None:
        """Stop both servers; idempotent and safe without start."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        http, self._http = self._http, None
        grpc, self._grpc = self._grpc, None
        if http is not None:
            http.shutdown()
        if grpc is not None:
            grpc.shutdown()
        self.grpc_port = self.http_port = None


def create(ctx: ComponentContext, config: Config) -> OtlpReceiver:
    """The receiver for one configured ``otlp`` section."""
    return OtlpReceiver(ctx, config)
