"""The ``otlp`` receiver as a component: configuration, start-up, shutdown."""

from __future__ import annotations

import socket
import textwrap

import pytest
import yaml
from pydantic import ValidationError

from collectors.otlp import Config, OtlpReceiver, create
from collectors.otlp.config import split_endpoint
from collectors.testing import InMemoryConsumer
from sovtel.component import ComponentContext, Receiver
from sovtel.config import ConfigError, parse_config
from sovtel.records import Signal
from sovtel.telemetry import Telemetry


def ctx() -> ComponentContext:
    return ComponentContext(name="otlp", telemetry=Telemetry().component("otlp"))


def local(**protocols) -> Config:
    base = {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
    for name, extra in protocols.items():
        base[name] = {**base[name], **extra}
    return Config.model_validate({"protocols": base})


class TestConfig:
    def test_defaults(self):
        """Defaults follow OTLP: gRPC on 4317 and HTTP on 4318 (loopback), 16 MiB limits, both enabled."""
        cfg = Config()
        assert (cfg.protocols.grpc.endpoint, cfg.protocols.http.endpoint) == ("127.0.0.1:4317", "127.0.0.1:4318")
        assert cfg.protocols.grpc.max_message_bytes == cfg.protocols.http.max_body_bytes == 16 * 1024 * 1024
        assert cfg.protocols.grpc.enabled and cfg.protocols.http.enabled

    def test_load_limit_defaults(self):
        """The HTTP load limits and the shared in-flight budget have bounded defaults."""
        http, cfg = Config().protocols.http, Config()
        assert (http.listen_backlog, http.max_workers, http.max_pending_requests) == (1024, 16, 256)
        assert (http.max_connections, http.request_timeout_s, http.read_timeout_s) == (4096, 30.0, 30.0)
        assert cfg.max_inflight_bytes == 64 * 1024 * 1024

    @pytest.mark.parametrize(
        ("data", "words"),
        [
            ({"protocols": {"grpc": {"endpoint": "4317"}}}, "must be host:port"),
            ({"protocols": {"http": {"endpoint": "localhost:99999"}}}, "port must be a number"),
            ({"protocols": {"http": {"endpoint": "::1:4318"}}}, "brackets"),
            ({"protocols": {"http": {"endpoint": "[nope]:4318"}}}, "not an IPv6 address"),
            ({"protocols": {"grpc": {"max_message_bytes": 0}}}, "greater than 0"),
            ({"protocols": {"grpc": {"max_message_bytes": 2**31}}}, "less than or equal"),
            ({"protocols": {"grpc": {"enabled": False}, "http": {"enabled": False}}}, "at least one"),
            ({"protocols": {"grpc": {"endpoint": "127.0.0.1:5000"}, "http": {"endpoint": "127.0.0.1:5000"}}}, "share"),
            ({"protocols": {"thrift": {}}}, "Extra inputs"),
            ({"retry_after_s": -1}, "greater than or equal"),
            ({"protocols": {"http": {"max_workers": 0}}}, "greater than or equal to 1"),
            ({"protocols": {"http": {"request_timeout_s": 0}}}, "greater than 0"),
            ({"protocols": {"http": {"max_pending_requests": -1}}}, "greater than or equal to 0"),
            ({"protocols": {"http": {"listen_backlog": 70000}}}, "less than or equal to 65535"),
            ({"protocols": {"http": {"max_connections": 0}}}, "greater than or equal to 1"),
            ({"max_inflight_bytes": 0}, "greater than 0"),
        ],
    )
    def test_invalid_configuration_is_refused(self, data, words):
        """Invalid settings fail validation with a message naming the problem."""
        with pytest.raises(ValidationError, match=words):
            Config.model_validate(data)

    @pytest.mark.parametrize(
        ("endpoint", "expected"), [("0.0.0.0:4317", ("0.0.0.0", 4317)), ("[::1]:0", ("::1", 0)), ("h:1", ("h", 1))]
    )
    def test_endpoints_split_into_host_and_port(self, endpoint, expected):
        """Endpoints are host:port, with IPv6 hosts in brackets."""
        assert split_endpoint(endpoint) == expected

    def test_found_by_the_core_configuration(self):
        """A pipeline configuration with receiver type ``otlp`` validates against this Config."""
        text = textwrap.dedent(
            """
            receivers:
              otlp/edge:
                protocols:
                  grpc: {endpoint: "127.0.0.1:0"}
                  http: {endpoint: "127.0.0.1:0", max_body_bytes: 1024}
            exporters: {}
            service:
              pipelines:
                traces: {receivers: [otlp/edge], exporters: [none]}
            """
        )
        with pytest.raises(ConfigError) as err:
            parse_config(yaml.safe_load(text), text=text)
        # Only the undefined exporter is wrong; the receiver section itself validated.
        assert all("otlp" not in e or "not defined" in e for e in err.value.errors)
        bad = text.replace("max_body_bytes: 1024", "max_body_bytes: 1024, colour: blue")
        with pytest.raises(ConfigError) as err:
            parse_config(yaml.safe_load(bad), text=bad)
        assert any("colour" in e and "unknown key" in e for e in err.value.errors)


class TestLifecycle:
    def test_is_a_receiver(self):
        """create() returns a Receiver."""
        assert isinstance(create(ctx(), local()), Receiver)

    def test_port_zero_binds_free_ports(self):
        """Port 0 binds free ports, exposed as grpc_port and http_port."""
        receiver = create(ctx(), local())
        receiver.start({Signal.TRACES: InMemoryConsumer()})
        try:
            assert receiver.grpc_port and receiver.http_port and receiver.grpc_port != receiver.http_port
        finally:
            receiver.shutdown()

    def test_shutdown_is_idempotent_and_safe_without_start(self):
        """shutdown() may be called before start and more than once."""
        receiver = create(ctx(), local())
        receiver.shutdown()
        receiver.start({})
        receiver.shutdown()
        receiver.shutdown()

    def test_shutdown_releases_the_ports(self):
        """After shutdown the ports are free again."""
        receiver = create(ctx(), local())
        receiver.start({Signal.TRACES: InMemoryConsumer()})
        http_port = receiver.http_port
        receiver.shutdown()
        with socket.socket() as s:
            s.bind(("127.0.0.1", http_port))

    def test_start_twice_is_an_error(self):
        """Starting a started receiver raises instead of binding twice."""
        receiver = create(ctx(), local())
        receiver.start({})
        try:
            with pytest.raises(RuntimeError, match="already started"):
                receiver.start({})
        finally:
            receiver.shutdown()

    @pytest.mark.parametrize("protocol", ["grpc", "http"])
    def test_port_in_use_fails_at_start_and_releases_everything(self, protocol):
        """A port already in use fails start() with a clear error, leaving nothing bound."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            receiver: OtlpReceiver = create(ctx(), local(**{protocol: {"endpoint": f"127.0.0.1:{port}"}}))
            with pytest.raises(OSError, match="cannot listen"):
                receiver.start({})
            assert receiver.grpc_port is None and receiver.http_port is None
            receiver.shutdown()

    @pytest.mark.parametrize("disabled", ["grpc", "http"])
    def test_a_protocol_can_be_disabled(self, disabled):
        """A disabled protocol binds nothing."""
        receiver = create(ctx(), local(**{disabled: {"enabled": False}}))
        receiver.start({})
        try:
            assert (getattr(receiver, f"{disabled}_port")) is None
        finally:
            receiver.shutdown()
