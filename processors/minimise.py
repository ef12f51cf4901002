"""Data minimisation: only declared attribute keys are kept; everything else is dropped and counted.

The allow-list is per table (spans, logs, metrics) plus one for resource attributes. A key ending
in ``.*`` allows a whole namespace. Free-text content columns are cleared unless the purpose
declares ``keep_content``. Works on the Arrow map columns directly: no Python object per record.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import ATTRIBUTE_COLUMNS, SPAN_CONTENT_COLUMNS, Batch, Signal, map_entries

# What an inference operator typically needs to run and debug the service, nothing personal.
DEFAULT_RESOURCE_KEYS: tuple[str, ...] = (
    "service.name",
    "service.version",
    "service.namespace",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.provider",
    "cloud.region",
    "host.name",
    "host.arch",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.pod.name",
    "k8s.deployment.name",
    "telemetry.sdk.*",
    "sovtel.*",
)
DEFAULT_SPAN_KEYS: tuple[str, ...] = (
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.top_k",
    "gen_ai.request.max_tokens",
    "gen_ai.request.stream",
    "gen_ai.request.seed",
    "gen_ai.request.choice.count",
    "gen_ai.response.id",
    "gen_ai.output.type",
    "gen_ai.tool.name",
    "gen_ai.tool.type",
    "gen_ai.tool.call.id",
    "gen_ai.data_source.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.evaluation.*",
    "gen_ai.usage.cache_creation.input_tokens",
    "server.address",
    "server.port",
    "http.request.method",
    "http.response.status_code",
    "rpc.system",
    "rpc.method",
    "db.system",
    "exception.type",
    "sovtel.*",
)
DEFAULT_LOG_KEYS: tuple[str, ...] = ("event.name", "exception.type", "code.function", "sovtel.*")
DEFAULT_METRIC_KEYS: tuple[str, ...] = (
    "gen_ai.*",
    "server.address",
    "error.type",
    "hw.*",
    "gpu.*",
    "sovtel.*",
)


class Config(ComponentConfig):
    """Allow-lists of attribute keys per table; undeclared keys are dropped (fail closed)."""

    purpose: str = Field(default="operations", description="The declared purpose these lists serve.")
    keep_content: bool = Field(
        default=False, description="Keep prompts/completions/tool I/O (masked later) for this purpose."
    )
    resource: list[str] = Field(default_factory=lambda: list(DEFAULT_RESOURCE_KEYS))
    spans: list[str] = Field(default_factory=lambda: list(DEFAULT_SPAN_KEYS))
    logs: list[str] = Field(default_factory=lambda: list(DEFAULT_LOG_KEYS))
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRIC_KEYS))


def validate_config(cfg: Config) -> list[str]:
    """Problems a pydantic model cannot see: malformed wildcard keys."""
    problems = []
    for section in ("resource", "spans", "logs", "metrics"):
        for i, key in enumerate(getattr(cfg, section)):
            if not key or ("*" in key and not key.endswith(".*")) or key.count("*") > 1:
                problems.append(f"{section}[{i}]: {key!r} is not a key or a 'prefix.*' namespace")
    return problems


class KeyFilter:
    """Decides, column-wise, which keys of a map array are allowed."""

    def __init__(self, keys: Iterable[str]) -> None:
        exact: list[str] = []
        prefixes: list[str] = []
        for k in keys:
            (prefixes if k.endswith(".*") else exact).append(k[:-1] if k.endswith(".*") else k)
        self.exact = pa.array(sorted(set(exact)), type=pa.string())
        self.prefixes = tuple(sorted(set(prefixes)))

    def mask(self, keys: pa.Array) -> pa.Array:
        """Boolean mask over a flat key array: True where the key is allowed."""
        allowed = pc.is_in(keys, value_set=self.exact)
        for p in self.prefixes:
            allowed = pc.or_(allowed, pc.starts_with(keys, p))
        return allowed

    def filter_column(self, column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
        """A map or list<map> column with disallowed entries removed, and how many were removed."""
        entries = map_entries(column)
        if len(entries.keys) == 0:
            return column, 0
        keep = self.mask(entries.keys).to_numpy(zero_copy_only=False)
        removed = len(keep) - int(keep.sum())
        if removed == 0:
            return column, 0
        return entries.rebuild(entries.keys, entries.items, keep), removed


class Minimise:
    """The processor: filter every attribute map column and clear undeclared content."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.resource = KeyFilter(cfg.resource)
        self.by_signal = {
            Signal.TRACES: KeyFilter(cfg.spans),
            Signal.LOGS: KeyFilter(cfg.logs),
            Signal.METRICS: KeyFilter(cfg.metrics),
        }

    def __call__(self, batch: Batch) -> Batch:
        """Drop undeclared attribute keys and, unless allowed, content; count what was dropped."""
        table = batch.table
        signal = batch.signal.value
        columns = list(ATTRIBUTE_COLUMNS[batch.signal])
        if batch.signal is Signal.TRACES:
            columns.append("event_attributes")
        for name in columns:
            flt = self.resource if name == "resource_attributes" else self.by_signal[batch.signal]
            new, removed = flt.filter_column(table.column(name))
            if removed:
                i = table.schema.get_field_index(name)
                table = table.set_column(i, table.schema.field(i), new)
                self.ctx.telemetry.removed(signal, removed, f"attribute_not_allowed:{name}")
        if batch.signal is Signal.TRACES and not self.cfg.keep_content:
            for name in SPAN_CONTENT_COLUMNS:
                col = table.column(name)
                nonempty = int(pc.sum(pc.not_equal(col, "")).as_py() or 0)
                if nonempty:
                    empty = pa.array([""] * table.num_rows, type=pa.string())
                    i = table.schema.get_field_index(name)
                    table = table.set_column(i, table.schema.field(i), empty)
                    self.ctx.telemetry.removed(signal, nonempty, f"content_not_allowed:{name}")
        return batch.replace(table)


def create(ctx: ComponentContext, config: Config) -> Minimise:
    """Build the minimisation processor."""
    return Minimise(ctx, config)
