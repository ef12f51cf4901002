"""Configuration in the OpenTelemetry Collector's shape: receivers, processors, exporters, pipelines.

``load_config`` validates the whole file and raises ``ConfigError`` listing *every* problem with
its YAML path and line, so an operator fixes them in one pass. Beyond each section's own model it
checks what only the whole file shows: references between sections, tier routing, where each tier's
sinks are under law (docs/tiers.md), that every traces and logs pipeline minimises (or says why not),
and that no receiver simulates its source outside the demo and tests.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sovtel.dedup import DedupConfig
from sovtel.jurisdictions import normalise
from sovtel.records import Signal
from sovtel.routing import SOVEREIGN_DEFAULT, Residency, check_tiers, residency_problems, route_problems
from sovtel.yamlconfig import ConfigError, Document, SecretError, SecretRef, YamlPath, resolve_secret

# The loader's error and the secret references are re-exported: components and commands take them from here.
__all__ = [
    "COMPONENT_PACKAGES", "ComponentSpec", "Config", "ConfigError", "MetricsEndpoint", "PipelineConfig", "RawConfig",
    "SecretError", "SecretRef", "ServiceConfig", "ServiceTelemetry", "Strict", "component_module", "load_config",
    "parse_config", "resolve_secret",
]

COMPONENT_PACKAGES: Mapping[str, str] = {
    "receivers": "collectors",
    "processors": "processors",
    "exporters": "storage",
}


class Strict(BaseModel):
    """Base for the core's own config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineConfig(Strict):
    """One pipeline: which receivers feed which processors (in order) and exporters."""

    receivers: list[str] = Field(min_length=1)
    processors: list[str] = Field(default_factory=list)
    exporters: list[str] = Field(min_length=1)
    tiers: list[str] | None = Field(
        default=None,
        description="Sovereignty tiers this pipeline carries (default: all); rows of other tiers are dropped.",
    )
    dedup: DedupConfig = Field(
        default_factory=DedupConfig, description="Resend deduplication window (docs/adr/0003-resend-dedup.md)."
    )
    unminimised: str | None = Field(
        default=None,
        max_length=500,
        description="Why this traces or logs pipeline runs without minimise (or without pii where minimise keeps "
        "content); recorded in the AI-Act ledger when `sovtel run` starts.",
    )

    @field_validator("unminimised")
    @classmethod
    def _a_reason(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip()) < 3:
            raise ValueError("give the reason this pipeline stores attributes and content unminimised")
        return value.strip() if value is not None else None


class MetricsEndpoint(Strict):
    """Where the pipeline's own /metrics is served."""

    address: str = "127.0.0.1:8888"
    enabled: bool = True


class ServiceTelemetry(Strict):
    """Self-telemetry settings."""

    metrics: MetricsEndpoint = MetricsEndpoint()


class ServiceConfig(Strict):
    """Wiring of components into pipelines, and process-wide settings."""

    node: str = Field(default_factory=lambda: os.environ.get("SOVTEL_NODE") or os.uname().nodename)
    country: str | None = Field(
        default=None,
        description="The operator's country (ISO 3166-1 alpha-2, e.g. DE): where local-tier rows must stay.",
    )
    sovereign_jurisdictions: list[str] = Field(
        default_factory=lambda: list(SOVEREIGN_DEFAULT),
        min_length=1,
        description="Where sovereign-tier rows may live: EU, EEA or country codes.",
    )
    data_dir: Path = Path(".sovtel")
    telemetry: ServiceTelemetry = ServiceTelemetry()
    pipelines: dict[str, PipelineConfig] = Field(min_length=1)

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        return normalise(value, countries_only=True) if value is not None else None

    @field_validator("sovereign_jurisdictions")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return [normalise(v) for v in value]

    def residency(self) -> Residency:
        """Where each tier's rows may live, as this service declares it."""
        return Residency(self.country, tuple(self.sovereign_jurisdictions))


class RawConfig(Strict):
    """The file as written, before component sections are validated by their own models."""

    receivers: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    processors: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    exporters: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    service: ServiceConfig


@dataclass(frozen=True)
class ComponentSpec:
    """A configured component: its section, full name (``type/name``), type, module and validated config."""

    kind: str
    name: str
    type: str
    module: ModuleType
    config: BaseModel


@dataclass(frozen=True)
class Config:
    """A validated configuration."""

    service: ServiceConfig
    components: dict[tuple[str, str], ComponentSpec]
    source: str = "<config>"

    def component(self, kind: str, name: str) -> ComponentSpec:
        """The spec of one configured component."""
        return self.components[(kind, name)]

    def pipeline_signal(self, pipeline: str) -> Signal:
        """The signal a pipeline carries, from its name (``traces``, ``logs/tier-a`` …)."""
        return Signal(pipeline.split("/", 1)[0])

    def unminimised(self) -> dict[str, str]:
        """Pipeline name → the reason it runs without minimisation, for the pipelines that opt out."""
        return {name: p.unminimised for name, p in self.service.pipelines.items() if p.unminimised}


def component_module(kind: str, type_name: str) -> ModuleType:
    """Import the module implementing component ``type_name`` of section ``kind``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", type_name):
        raise ImportError(f"component type {type_name!r} is not a valid name")
    module = importlib.import_module(f"{COMPONENT_PACKAGES[kind]}.{type_name}")
    if not hasattr(module, "Config") or not hasattr(module, "create"):
        raise ImportError(f"{module.__name__} is not a sovtel component (needs Config and create)")
    return module


def parse_config(
    data: Any, source: str = "<config>", text: str | None = None, *, allow_simulated: bool = True
) -> Config:
    """Validate an already-loaded mapping (``text``, if given, supplies line numbers); raise ConfigError
    listing every error.

    This is how the demo and tests build a configuration in code, so simulated receivers are
    allowed unless ``allow_simulated`` is false; a file (``load_config``) never allows them.
    """
    lines: Mapping[YamlPath, int] = {}
    if text is not None:
        with contextlib.suppress(ConfigError):  # text that does not parse only costs the line numbers
            lines = Document.parse(text, source).lines
    return _validate(Document(source, data, lines), allow_simulated=allow_simulated)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file, as ``sovtel run`` and ``sovtel config validate`` do.

    A receiver with ``simulated: true`` is refused: a file is what runs on a real node.
    """
    return _validate(Document.read(path), allow_simulated=False)


# Signals whose records carry attributes and free text about people: their pipelines must minimise.
_PERSONAL_SIGNALS = (Signal.TRACES.value, Signal.LOGS.value)


def _minimisation_problems(pname: str, pipe: PipelineConfig, processors: Mapping[str, ComponentSpec]) -> list[
        tuple[YamlPath, str]]:
    """Problems with a pipeline's minimisation: a traces or logs pipeline must run ``minimise`` (and
    ``pii`` when a minimise keeps content), unless ``unminimised`` gives the reason; nothing else may
    set ``unminimised``."""
    at: YamlPath = ("service", "pipelines", pname)
    signal = pname.split("/", 1)[0]
    if signal not in _PERSONAL_SIGNALS:
        if pipe.unminimised is not None:
            return [((*at, "unminimised"), f"only traces and logs pipelines minimise; remove it from a {signal} "
                     "pipeline")]
        return []
    if any(ref not in processors for ref in pipe.processors):
        return []  # an undefined or invalid processor is reported already; judge the pipeline once it is fixed
    specs = [processors[ref] for ref in pipe.processors]
    minimisers = [s for s in specs if s.type == "minimise"]
    missing: list[str] = []
    if not minimisers:
        missing.append(f"minimise (without it every attribute and message of a {signal} record is stored raw)")
    elif any(getattr(s.config, "keep_content", False) for s in minimisers) and not any(s.type == "pii" for s in specs):
        keeper = next(s.name for s in minimisers if getattr(s.config, "keep_content", False))
        missing.append(f"pii ({keeper!r} keeps content, which is otherwise stored unmasked)")
    if missing and pipe.unminimised is None:
        return [((*at, "processors"), (
            f"a {signal} pipeline must run {'; '.join(missing)}. Add it, or opt out on purpose with "
            f"unminimised: '<why>' on the pipeline (the reason is recorded in the AI-Act ledger at start-up)"
        ))]
    if not missing and pipe.unminimised is not None:
        return [((*at, "unminimised"), "the pipeline minimises (and masks kept content), so it opts out of "
                 "nothing: remove unminimised")]
    return []


def _validate(document: Document, *, allow_simulated: bool) -> Config:
    """The configuration a document holds; raises ConfigError listing every error."""
    source, data, where = document.source, document.data, document.where
    errors: list[str] = []
    # Policy problems (minimisation, simulation, jurisdiction) do not stop the routing check, which
    # needs only well-formed components and references: every problem is reported in one pass.
    policy: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(source, [f"{where(())}: the configuration must be a mapping"])
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, document.problems(exc)) from None

    components: dict[tuple[str, str], ComponentSpec] = {}
    for kind in COMPONENT_PACKAGES:
        for name, section in getattr(raw, kind).items():
            type_name = name.split("/", 1)[0]
            try:
                module = component_module(kind, type_name)
            except ImportError as exc:
                errors.append(f"{where((kind, name))}: unknown {kind[:-1]} type {type_name!r} ({exc})")
                continue
            try:
                cfg = module.Config.model_validate(section or {})
            except ValidationError as exc:
                errors.extend(document.problems(exc, (kind, name)))
                continue
            extra_check = getattr(module, "validate_config", None)
            if extra_check is not None:
                errors.extend(f"{where((kind, name))}: {problem}" for problem in extra_check(cfg))
            components[(kind, name)] = ComponentSpec(kind, name, type_name, module, cfg)
            if kind == "receivers" and getattr(cfg, "simulated", False) is True and not allow_simulated:
                policy.append(
                    f"{where((kind, name, 'simulated'))}: a simulated receiver is for the demo and tests only "
                    f"(it would report SIMULATED devices as real); remove simulated: true"
                )

    for pname, pipe in raw.service.pipelines.items():
        at = ("service", "pipelines", pname)
        try:
            Signal(pname.split("/", 1)[0])
        except ValueError:
            errors.append(
                f"{where(at)}: pipeline name must start with one of "
                f"{', '.join(s.value for s in Signal)} (e.g. 'traces' or 'traces/local')"
            )
        for kind in COMPONENT_PACKAGES:
            for i, ref in enumerate(getattr(pipe, kind)):
                if ref not in getattr(raw, kind):
                    errors.append(f"{where((*at, kind, i))}: {kind[:-1]} {ref!r} is not defined in {kind}")
        if pipe.tiers is not None:
            errors.extend(check_tiers(pipe.tiers, where((*at, "tiers"))))
        processors = {spec.name: spec for spec in components.values() if spec.kind == "processors"}
        policy.extend(f"{where(path)}: {problem}" for path, problem in _minimisation_problems(pname, pipe, processors))
    exporters = {spec.name: spec.config for spec in components.values() if spec.kind == "exporters"}
    # Where a sink is under law is a property of the sink alone: checked for every valid exporter.
    policy.extend(
        f"{where(('exporters', name, 'jurisdiction'))}: {problem}"
        for name, problem in residency_problems(exporters, raw.service.residency())
    )
    if not errors:
        errors.extend(route_problems(raw.service.pipelines, exporters, lambda p: where(("service", "pipelines", p))))
    errors.extend(policy)
    if errors:
        raise ConfigError(source, errors)
    return Config(service=raw.service, components=components, source=source)
