"""Fixtures for the OTLP receiver tests: receivers started on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from collectors.otlp import Config, OtlpReceiver, create
from collectors.testing import InMemoryConsumer
from sovtel.component import ComponentContext, Consumer
from sovtel.records import Signal
from sovtel.telemetry import Telemetry
from tests.collectors.otlp.builders import SMALL_LIMIT


class Running:
    """A started receiver with one InMemoryConsumer per wired signal."""

    def __init__(self, receiver: OtlpReceiver, telemetry: Telemetry, consumers: dict[Signal, InMemoryConsumer]) -> None:
        self.receiver = receiver
        self.telemetry = telemetry
        self.consumers = consumers

    @property
    def traces(self) -> InMemoryConsumer:
        return self.consumers[Signal.TRACES]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.receiver.grpc_port}"


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Running]]:
    """Start receivers on 127.0.0.1 port 0 (gRPC and HTTP); all are shut down after the test."""
    started: list[OtlpReceiver] = []

    def start(signals: tuple[Signal, ...] = tuple(Signal), **overrides: Any) -> Running:
        cfg: dict[str, Any] = {
            "protocols": {
                "grpc": {"endpoint": "127.0.0.1:0", "max_message_bytes": SMALL_LIMIT},
                "http": {"endpoint": "127.0.0.1:0", "max_body_bytes": SMALL_LIMIT},
            },
            "retry_after_s": 0,
        }
        cfg.update(overrides)
        telemetry = Telemetry()
        ctx = ComponentContext(name="otlp", telemetry=telemetry.component("otlp"))
        receiver = create(ctx, Config.model_validate(cfg))
        consumers = {s: InMemoryConsumer() for s in signals}
        wired: dict[Signal, Consumer] = dict(consumers)
        receiver.start(wired)
        started.append(receiver)
        return Running(receiver, telemetry, consumers)

    yield start
    for r in started:
        r.shutdown()
