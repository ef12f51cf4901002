"""The contracts every receiver, processor and exporter implements, and what the runtime hands them.

A component module (``collectors/<type>.py``, ``processors/<type>.py``, ``storage/<type>.py`` or a
package of that name) exposes ``Config`` (a pydantic model, ``extra="forbid"``) and
``create(ctx, config) -> component``. The runtime finds it by its type name; adding a component
touches no core file.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from sovtel.records import Batch, Signal
from sovtel.telemetry import ComponentTelemetry


class ComponentConfig(BaseModel):
    """Base of every component's configuration: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportResult(enum.Enum):
    """Outcome of an export; exporters return it and never raise into the pipeline."""

    SUCCESS = "success"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


class Backpressure(Exception):
    """The pipeline cannot accept more data now; receivers answer retryable (429 / RESOURCE_EXHAUSTED)."""


class Rejected(Exception):
    """The data was refused for good (e.g. a processor could not handle it safely); answer 4xx."""


@dataclass(frozen=True)
class Accepted:
    """What ``Consumer.consume`` returns: rows taken into the pipeline and rows dropped on the way.

    ``reasons`` says why rows were dropped (reason → rows), so a receiver can tell its client what
    will not be stored (OTLP partial success) instead of acknowledging it.
    """

    accepted: int
    dropped: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)


class Consumer(Protocol):
    """The pipeline entry a receiver hands decoded batches to."""

    def consume(self, batch: Batch) -> Accepted:
        """Process and enqueue ``batch``; called on the receiver's thread; raises Backpressure or Rejected."""
        ...


@runtime_checkable
class Receiver(Protocol):
    """Accepts telemetry from outside and hands it to the consumer of its signal."""

    def start(self, consumers: dict[Signal, Consumer]) -> None:
        """Start serving; ``consumers`` holds one entry per signal this receiver is wired to."""
        ...

    def shutdown(self) -> None:
        """Stop serving; idempotent and safe without start."""
        ...


@runtime_checkable
class Processor(Protocol):
    """Transforms a batch and returns it; may drop rows, counting them by reason.

    A processor may also define the optional lifecycle of ``Lifecycle``: heavy set-up (an NER
    model, key rings, plugins) belongs in ``start``, so a bad model or key fails at start-up with a
    clear message instead of on the first batch.
    """

    def __call__(self, batch: Batch) -> Batch:
        """Return the processed batch (possibly with fewer rows); called on the receiver's thread."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """The optional ``start``/``shutdown`` of a processor, as the OpenTelemetry Collector's components have."""

    def start(self, context: ComponentContext) -> None:
        """Load what the component holds; raise here, at start-up, if it cannot work. Called once, before data."""
        ...

    def shutdown(self) -> None:
        """Release what ``start`` loaded; idempotent and safe without start."""
        ...


def start_component(component: object, context: ComponentContext) -> None:
    """Start ``component`` if it has the optional lifecycle (processors without one need nothing)."""
    if isinstance(component, Lifecycle):
        component.start(context)


def shutdown_component(component: object) -> None:
    """Shut ``component`` down if it has the optional lifecycle."""
    if isinstance(component, Lifecycle):
        component.shutdown()


@runtime_checkable
class Exporter(Protocol):
    """Writes batches to a destination. Batching, queueing and retries wrap it; it knows nothing of them."""

    def start(self) -> None:
        """Connect and prepare (e.g. migrate); raise here, at start-up, if the destination is unusable."""
        ...

    def export(self, batch: Batch) -> ExportResult:
        """Write one batch; never raises. Called on the exporter's worker thread only."""
        ...

    def shutdown(self) -> None:
        """Release resources; idempotent and safe without start."""
        ...


@dataclass
class ComponentContext:
    """What the runtime gives a component when creating it."""

    name: str
    telemetry: ComponentTelemetry
    node: str = "localhost"
    data_dir: Path = field(default_factory=lambda: Path(".sovtel"))
    resolve_secret: Callable[[str], str] = field(default=lambda ref: ref)
