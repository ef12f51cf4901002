"""No privacy processor opens a connection to anything but loopback, including while it loads the
NER model, builds Presidio recognizers or masks e-mail addresses (whose Presidio validator would
fetch a suffix list)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from processors import dp, generalise, pii, pseudonymise
from processors.keyring import rotate
from sovtel.component import ComponentContext
from sovtel.config import resolve_secret
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from tests.processors.conftest import fixed_key

_TARGETS: list[Any] = []
_RECORDING = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        _TARGETS.append((event, args[1] if event != "socket.getaddrinfo" else args[0]))


# Audit hooks cannot be removed; this one records only while a test sets _RECORDING.
sys.addaudithook(_hook)


def _is_loopback(target: Any) -> bool:
    host = target[0] if isinstance(target, tuple) else target
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False  # a host name that is not localhost


def test_privacy_processors_open_no_outbound_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building and running pii (with NER), pseudonymise, generalise and dp records no non-loopback target."""
    global _RECORDING
    connects: list[Any] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    ring = tmp_path / "ring.yaml"
    rotate(ring, "node")
    tel = Telemetry()
    _TARGETS.clear()
    _RECORDING = True
    try:

        def c(name: str, resolver: Any = resolve_secret) -> ComponentContext:
            return ComponentContext(name=name, telemetry=tel.component(name), resolve_secret=resolver)

        steps = [
            pii.create(c("pii", fixed_key), pii.Config(ner="required")),
            pseudonymise.create(c("ps"), pseudonymise.Config(key_ring=ring)),
            generalise.create(c("gen"), generalise.Config(tier="public")),
            dp.create(
                c("dp"), dp.Config(perturb=[dp.FieldNoise(column="output_tokens", lower=0, upper=4096, epsilon=0.5)])
            ),
        ]
        table = table_from_columns(
            Signal.TRACES,
            {
                "input_messages": [
                    '[{"role":"user","content":"mail anna@example.de, call +49 30 901820, I am Anna Schmidt"}]'
                ],
                "user_id": ["u-1"],
                "output_tokens": [120],
                "span_attributes": [[("client.address", "85.12.33.201")]],
            },
        )
        batch = Batch(Signal.TRACES, table)
        for step in steps:
            batch = step(batch)
        # Presidio's own e-mail validator is the one that would fetch; ours never calls it.
        assert "anna@example.de" not in batch.table.column("input_messages")[0].as_py()
        assert EmailRecognizer is not None
    finally:
        _RECORDING = False
    outbound = [t for t in _TARGETS if not _is_loopback(t[1])] + [a for a in connects if not _is_loopback(a)]
    assert outbound == []


def test_the_spy_sees_connections() -> None:
    """The audit hook does record a connection attempt (so the test above can fail)."""
    global _RECORDING
    _TARGETS.clear()
    _RECORDING = True
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", 9))  # loopback discard port: refused or not, the attempt is audited
        except OSError:
            pass
        finally:
            s.close()
    finally:
        _RECORDING = False
    assert ("socket.connect", ("127.0.0.1", 9)) in _TARGETS
