"""Configuration of the OTLP receiver, in the OpenTelemetry Collector's shape (``protocols.grpc/http``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from collectors.otlp.limits import RecordLimits
from sovtel.component import ComponentConfig
from sovtel.config import SecretRef

MIB = 1024 * 1024
DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_MAX_BYTES = 16 * MIB
DEFAULT_RETRY_AFTER_S = 1
# Load limits of the HTTP transport (see HttpProtocol) and of both (Config.max_inflight_bytes).
DEFAULT_LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
DEFAULT_HTTP_WORKERS = 16
DEFAULT_MAX_PENDING_REQUESTS = 256
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_MAX_INFLIGHT_BYTES = 64 * MIB
# gRPC message lengths are signed 32-bit in grpc core.
GRPC_MAX_MESSAGE_BYTES = 2**31 - 1


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); raises ValueError saying what is wrong."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host:
        raise ValueError(f"endpoint {endpoint!r} must be host:port (e.g. 127.0.0.1:4317; port 0 picks a free one)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"endpoint {endpoint!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"endpoint {endpoint!r}: write IPv6 addresses in brackets, e.g. [::1]:4317")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"endpoint {endpoint!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def _check_endpoint(value: str) -> str:
    split_endpoint(value)
    return value


class TlsSettings(ComponentConfig):
    """Server TLS: certificate chain and private key, by file path (PEM)."""

    cert_file: Path = Field(description="PEM certificate chain the server presents.")
    key_file: Path = Field(description="PEM private key of that certificate.")

    def load(self) -> tuple[bytes, bytes]:
        """(certificate chain, key) bytes; raises OSError naming the file that cannot be read."""
        return self.cert_file.read_bytes(), self.key_file.read_bytes()


class BearerToken(ComponentConfig):
    """One accepted bearer token (by reference) and the tenant it writes as."""

    token: SecretRef = Field(description="env:NAME or file:PATH holding the token.")
    tenant: str = Field(min_length=1, description="The tenant every record sent with this token belongs to.")


class AuthSettings(ComponentConfig):
    """Bearer-token authentication: a request without a listed token is refused (401 / UNAUTHENTICATED)."""

    bearer_tokens: list[BearerToken] = Field(min_length=1)


class GrpcProtocol(ComponentConfig):
    """OTLP over gRPC."""

    enabled: bool = True
    tls: TlsSettings | None = None
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    max_message_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0, le=GRPC_MAX_MESSAGE_BYTES)
    max_workers: int = Field(8, ge=1, le=256, description="threads serving requests")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)


class HttpProtocol(ComponentConfig):
    """OTLP over HTTP (protobuf and JSON)."""

    enabled: bool = True
    tls: TlsSettings | None = None
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    max_body_bytes: int = Field(
        DEFAULT_MAX_BYTES, gt=0, description="limit on the body, both as sent and after decompression"
    )
    read_timeout_s: float = Field(
        DEFAULT_READ_TIMEOUT_S,
        gt=0,
        description="idle time after which a kept-alive connection is closed, and the longest pause within a request",
    )
    request_timeout_s: float = Field(
        DEFAULT_REQUEST_TIMEOUT_S,
        gt=0,
        le=3600,
        description="total time a client has to send one request's headers and body (a trickling client is cut "
        "off with 408)",
    )
    max_workers: int = Field(
        DEFAULT_HTTP_WORKERS, ge=1, le=1024, description="threads reading, decoding and answering requests"
    )
    max_pending_requests: int = Field(
        DEFAULT_MAX_PENDING_REQUESTS,
        ge=0,
        le=65536,
        description="requests that may wait for a free worker; beyond it a request is answered 503 with Retry-After",
    )
    max_connections: int = Field(
        DEFAULT_MAX_CONNECTIONS,
        ge=1,
        le=1_000_000,
        description="open client connections (idle kept-alive ones included); beyond it a new connection is "
        "answered 503 with Retry-After and closed",
    )
    listen_backlog: int = Field(
        DEFAULT_LISTEN_BACKLOG,
        ge=1,
        le=65535,
        description="connections the kernel holds before they are accepted (capped by net.core.somaxconn)",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)


class Protocols(ComponentConfig):
    """Which transports the receiver serves."""

    grpc: GrpcProtocol = Field(default_factory=lambda: GrpcProtocol.model_validate({}))
    http: HttpProtocol = Field(default_factory=lambda: HttpProtocol.model_validate({}))


class Config(ComponentConfig):
    """Receiver ``otlp``: OTLP/gRPC and OTLP/HTTP (protobuf or JSON, optionally gzip) for traces, metrics, logs."""

    protocols: Protocols = Field(default_factory=lambda: Protocols.model_validate({}))
    retry_after_s: int = Field(
        DEFAULT_RETRY_AFTER_S, ge=0, le=3600, description="back-off a client is told to wait when the pipeline is full"
    )
    auth: AuthSettings | None = Field(
        default=None, description="Require a bearer token; each token binds the tenant its records are stored under."
    )
    limits: RecordLimits = Field(
        default_factory=RecordLimits,
        description="per-record limits: attributes per record, events per span, attributes per event, clock skew",
    )
    max_inflight_bytes: int = Field(
        DEFAULT_MAX_INFLIGHT_BYTES,
        gt=0,
        description="request bytes (after decompression) read and decoded at once over both transports; a request "
        "beyond it is refused as retryable (HTTP 429 / gRPC RESOURCE_EXHAUSTED). A request alone is always admitted.",
    )

    @model_validator(mode="after")
    def _check(self) -> Config:
        problems = []
        grpc, http = self.protocols.grpc, self.protocols.http
        if not grpc.enabled and not http.enabled:
            problems.append("at least one of protocols.grpc and protocols.http must be enabled")
        if grpc.enabled and http.enabled:
            g, h = split_endpoint(grpc.endpoint), split_endpoint(http.endpoint)
            if g == h and g[1] != 0:
                problems.append(f"protocols.grpc and protocols.http cannot share the endpoint {grpc.endpoint}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
