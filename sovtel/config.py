"""Configuration in the OpenTelemetry Collector's shape: receivers, processors, exporters, pipelines.

``load_config`` validates the whole file and raises ``ConfigError`` listing *every* problem with
its YAML path and line, so an operator fixes them in one pass.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sovtel.records import Signal

COMPONENT_PACKAGES: Mapping[str, str] = {
    "receivers": "collectors",
    "processors": "processors",
    "exporters": "storage",
}

_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


def _check_secret_ref(value: str) -> str:
    if not _SECRET_REF.match(value):
        raise ValueError("secrets are given by reference only: use 'env:NAME' or 'file:PATH', not a literal value")
    return value


SecretRef = Annotated[str, AfterValidator(_check_secret_ref)]
"""A secret given by reference (``env:NAME`` or ``file:PATH``); a literal value fails validation."""


class SecretError(Exception):
    """A secret reference could not be resolved."""


def resolve_secret(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """The value behind ``env:NAME`` or ``file:PATH``; raises SecretError saying which reference failed."""
    env = os.environ if environ is None else environ
    if ref.startswith("env:"):
        name = ref[4:]
        if name not in env:
            raise SecretError(f"secret {ref}: environment variable {name} is not set")
        return env[name]
    if ref.startswith("file:"):
        path = Path(ref[5:])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SecretError(f"secret {ref}: cannot read file ({exc.strerror})") from exc
    raise SecretError(f"secret reference {ref!r} is neither env:NAME nor file:PATH")


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


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))


def component_module(kind: str, type_name: str) -> ModuleType:
    """Import the module implementing component ``type_name`` of section ``kind``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", type_name):
        raise ImportError(f"component type {type_name!r} is not a valid name")
    module = importlib.import_module(f"{COMPONENT_PACKAGES[kind]}.{type_name}")
    if not hasattr(module, "Config") or not hasattr(module, "create"):
        raise ImportError(f"{module.__name__} is not a sovtel component (needs Config and create)")
    return module


def _locate(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> str:
    """``line N: a.b[2].c`` for a config path, using the closest known line."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    return f"line {line}: {text}" if line else text or "<top>"


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map every YAML path in the document to its 1-based line number."""
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                index[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def _pydantic_errors(
    exc: ValidationError, prefix: tuple[str | int, ...], lines: Mapping[tuple[str | int, ...], int]
) -> Iterable[str]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of this section)"
        yield f"{_locate(lines, (*prefix, *loc))}: {msg}"


def parse_config(data: Any, source: str = "<config>", text: str | None = None) -> Config:
    """Validate an already-loaded mapping; raise ConfigError listing every error."""
    lines = _line_index(text) if text is not None else {}
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(source, [f"{_locate(lines, ())}: the configuration must be a mapping"])
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, list(_pydantic_errors(exc, (), lines))) from None

    components: dict[tuple[str, str], ComponentSpec] = {}
    for kind in COMPONENT_PACKAGES:
        for name, section in getattr(raw, kind).items():
            type_name = name.split("/", 1)[0]
            try:
                module = component_module(kind, type_name)
            except ImportError as exc:
                errors.append(f"{_locate(lines, (kind, name))}: unknown {kind[:-1]} type {type_name!r} ({exc})")
                continue
            try:
                cfg = module.Config.model_validate(section or {})
            except ValidationError as exc:
                errors.extend(_pydantic_errors(exc, (kind, name), lines))
                continue
            extra_check = getattr(module, "validate_config", None)
            if extra_check is not None:
                errors.extend(
                    f"{_locate(lines, (kind, name))}: {problem}" for problem in extra_check(cfg)
                )
            components[(kind, name)] = ComponentSpec(kind, name, type_name, module, cfg)

    for pname, pipe in raw.service.pipelines.items():
        where = ("service", "pipelines", pname)
        try:
            Signal(pname.split("/", 1)[0])
        except ValueError:
            errors.append(
                f"{_locate(lines, where)}: pipeline name must start with one of "
                f"{', '.join(s.value for s in Signal)} (e.g. 'traces' or 'traces/local')"
            )
        for kind in COMPONENT_PACKAGES:
            for i, ref in enumerate(getattr(pipe, kind)):
                if ref not in getattr(raw, kind):
                    errors.append(f"{_locate(lines, (*where, kind, i))}: {kind[:-1]} {ref!r} is not defined in {kind}")
        if pipe.tiers is not None:
            from sovtel.routing import check_tiers

            errors.extend(check_tiers(pipe.tiers, _locate(lines, (*where, "tiers"))))
    if not errors:
        from sovtel.routing import route_problems

        errors.extend(route_problems(Config(service=raw.service, components=components, source=source)))
    if errors:
        raise ConfigError(source, errors)
    return Config(service=raw.service, components=components, source=source)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(str(p), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(data, source=str(p), text=text)
