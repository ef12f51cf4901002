"""Configuration in the OpenTelemetry Collector's shape: receivers, processors, exporters, pipelines.

``load_config`` validates the whole file and raises ``ConfigError`` listing *every* problem with
its YAML path and line, so an operator fixes them in one pass.
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sovtel.records import Signal
from sovtel.routing import check_tiers, route_problems
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
    data_dir: Path = Path(".sovtel")
    telemetry: ServiceTelemetry = ServiceTelemetry()
    pipelines: dict[str, PipelineConfig] = Field(min_length=1)


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


def component_module(kind: str, type_name: str) -> ModuleType:
    """Import the module implementing component ``type_name`` of section ``kind``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", type_name):
        raise ImportError(f"component type {type_name!r} is not a valid name")
    module = importlib.import_module(f"{COMPONENT_PACKAGES[kind]}.{type_name}")
    if not hasattr(module, "Config") or not hasattr(module, "create"):
        raise ImportError(f"{module.__name__} is not a sovtel component (needs Config and create)")
    return module


def parse_config(data: Any, source: str = "<config>", text: str | None = None) -> Config:
    """Validate an already-loaded mapping (``text``, if given, supplies line numbers); raise ConfigError
    listing every error."""
    lines: Mapping[YamlPath, int] = {}
    if text is not None:
        with contextlib.suppress(ConfigError):  # text that does not parse only costs the line numbers
            lines = Document.parse(text, source).lines
    return _validate(Document(source, data, lines))


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file."""
    return _validate(Document.read(path))


def _validate(document: Document) -> Config:
    """The configuration a document holds; raises ConfigError listing every error."""
    source, data, where = document.source, document.data, document.where
    errors: list[str] = []
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
    if not errors:
        exporters = {spec.name: spec.config for spec in components.values() if spec.kind == "exporters"}
        errors.extend(route_problems(raw.service.pipelines, exporters))
    if errors:
        raise ConfigError(source, errors)
    return Config(service=raw.service, components=components, source=source)
