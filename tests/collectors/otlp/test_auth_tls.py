"""OTLP receiver TLS (self-signed certificate made in the test) and bearer tokens that bind a tenant."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from collectors.otlp import Config, OtlpReceiver, create
from collectors.otlp.auth import Authenticator
from collectors.otlp.ingest import TenantMismatch, bind_tenant
from collectors.otlp_client import span_request
from collectors.testing import InMemoryConsumer
from sovtel.component import ComponentContext, Consumer
from sovtel.config import resolve_secret
from sovtel.records import Signal, table_from_columns
from sovtel.telemetry import Telemetry

TOKENS = {"TOKEN_ACME": "s3cret-acme", "TOKEN_GLOBEX": "s3cret-globex"}


def self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, pem


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[OtlpReceiver, InMemoryConsumer, bytes]]:
    """A receiver with TLS on both transports and two bearer tokens (acme, globex) given by env reference."""
    cert_file, key_file, pem = self_signed(tmp_path)
    tls = {"cert_file": str(cert_file), "key_file": str(key_file)}
    cfg = Config.model_validate({
        "protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": tls}, "http": {"endpoint": "127.0.0.1:0", "tls": tls}},
        "auth": {"bearer_tokens": [{"token": "env:TOKEN_ACME", "tenant": "acme"},
                                   {"token": "env:TOKEN_GLOBEX", "tenant": "globex"}]},
    })
    ctx = ComponentContext(name="otlp", telemetry=Telemetry().component("otlp"),
                           resolve_secret=lambda ref: resolve_secret(ref, environ=TOKENS))
    receiver = create(ctx, cfg)
    consumer = InMemoryConsumer()
    wired: dict[Signal, Consumer] = {Signal.TRACES: consumer}
    receiver.start(wired)
    try:
        yield receiver, consumer, pem
    finally:
        receiver.shutdown()


def https_post(port: int, pem: bytes, body: bytes, token: str | None) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cadata=pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


def body(tenant: str | None = None) -> bytes:
    resource = {"service.name": "chat-api"}
    if tenant is not None:
        resource["sovtel.tenant"] = tenant
    return span_request(1, [1, 2, 3], resource)


@pytest.mark.parametrize(
    ("token", "claimed", "status", "stored_tenant"),
    [
        ("s3cret-acme", None, 200, "acme"),  # untagged records take the token's tenant
        ("s3cret-acme", "acme", 200, "acme"),
        ("s3cret-globex", None, 200, "globex"),
        ("s3cret-acme", "globex", 403, None),  # cannot write as another tenant
        (None, None, 401, None),
        ("wrong", None, 401, None),
        ("s3cret-acme-and-more", None, 401, None),
    ],
)
def test_https_bearer_token_binds_the_tenant(secured: tuple[OtlpReceiver, InMemoryConsumer, bytes],
                                             token: str | None, claimed: str | None, status: int,
                                             stored_tenant: str | None) -> None:
    """Over HTTPS a valid token is required and its tenant is the only tenant its records can carry."""
    receiver, consumer, pem = secured
    got, headers = https_post(int(receiver.http_port or 0), pem, body(claimed), token)
    assert got == status
    if status == 401:
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    if stored_tenant is None:
        assert consumer.batches == []
    else:
        assert consumer.batches[-1].table.column("tenant_id").to_pylist() == [stored_tenant] * 3
        assert consumer.batches[-1].meta["tenant"] == stored_tenant


def test_plain_http_to_a_tls_port_is_not_accepted(secured: tuple[OtlpReceiver, InMemoryConsumer, bytes]) -> None:
    """A client speaking plain HTTP to the TLS endpoint gets no OTLP answer and nothing is consumed."""
    receiver, consumer, _ = secured
    conn = http.client.HTTPConnection("127.0.0.1", int(receiver.http_port or 0), timeout=5)
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("POST", "/v1/traces", body=body(), headers={"Authorization": "Bearer s3cret-acme"})
        conn.getresponse().read()
    conn.close()
    assert consumer.batches == []


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((("authorization", "Bearer s3cret-globex"),), grpc.StatusCode.OK),
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_grpc_over_tls_requires_a_token(secured: tuple[OtlpReceiver, InMemoryConsumer, bytes],
                                        metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode) -> None:
    """OTLP/gRPC over TLS answers UNAUTHENTICATED without a valid token and binds the token's tenant with one."""
    receiver, consumer, pem = secured
    creds = grpc.ssl_channel_credentials(root_certificates=pem)
    with grpc.secure_channel(f"localhost:{receiver.grpc_port}", creds) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = ExportTraceServiceRequest.FromString(body())
        if code is grpc.StatusCode.OK:
            stub.Export(request, metadata=metadata, timeout=10)
            assert consumer.batches[-1].table.column("tenant_id").to_pylist() == ["globex"] * 3
        else:
            with pytest.raises(grpc.RpcError) as err:
                stub.Export(request, metadata=metadata, timeout=10)
            assert err.value.code() is code
            assert consumer.batches == []


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"bearer_tokens": [{"token": "s3cret", "tenant": "acme"}]}, "by reference only"),
        ({"bearer_tokens": []}, "at least 1"),
        ({"bearer_tokens": [{"token": "env:T", "tenant": ""}]}, "at least 1 character"),
    ],
)
def test_auth_config_rejects_literal_or_incomplete_tokens(auth: dict[str, Any], message: str) -> None:
    """Tokens are secrets by reference and each names a tenant; anything else fails validation."""
    with pytest.raises(ValidationError, match=message):
        Config.model_validate({"auth": auth})


@pytest.mark.parametrize(
    ("header", "tenant"),
    [("Bearer a", "t1"), ("bearer a", "t1"), ("Bearer  b ", "t2"), ("Basic a", None), ("Bearer", None),
     ("", None), (None, None), ("Bearer c", None)],
)
def test_authenticator_maps_headers_to_tenants(header: str | None, tenant: str | None) -> None:
    """Only 'Bearer <known token>' yields a tenant; other schemes and unknown tokens yield none."""
    assert Authenticator({"a": "t1", "b": "t2"}).tenant_for(header) == tenant


def test_bind_tenant_fills_empty_and_refuses_other_tenants() -> None:
    """Empty tenant ids take the bound tenant; a row naming another tenant refuses the whole batch."""
    table = table_from_columns(Signal.TRACES, {"tenant_id": ["", "acme"]})
    assert bind_tenant(table, "acme").column("tenant_id").to_pylist() == ["acme", "acme"]
    with pytest.raises(TenantMismatch):
        bind_tenant(table, "globex")
    assert isinstance(bind_tenant(table, "acme"), pa.Table)


def test_unresolvable_token_fails_at_start(tmp_path: Path) -> None:
    """A token reference that cannot be resolved stops the receiver from starting, naming the entry."""
    cfg = Config.model_validate({"protocols": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}},
                                 "auth": {"bearer_tokens": [{"token": "env:MISSING", "tenant": "acme"}]}})
    ctx = ComponentContext(name="otlp", telemetry=Telemetry().component("otlp"),
                           resolve_secret=lambda ref: resolve_secret(ref, environ={}))
    receiver = create(ctx, cfg)
    start: Callable[[], None] = lambda: receiver.start({Signal.TRACES: InMemoryConsumer()})  # noqa: E731
    with pytest.raises(Exception, match=r"bearer_tokens\[0\]"):
        start()
    receiver.shutdown()
