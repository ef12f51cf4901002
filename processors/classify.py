"""Tier classification: sets each record's ``tier`` (``local`` / ``sovereign`` / ``public``).

The tier starts from the declared ``sovtel.tier`` tag (the ``tier`` column the receiver fills) and
can only become stricter: a record missing a mandatory resource tag, or with an unknown tier, is
``local``; each matching rule raises the record to at least the rule's tier (PII found → at least
``sovereign``; AI-Act high-risk workload → ``local`` by default); a ``public`` record that still
carries identifiers or content becomes ``sovereign``. Rules are YAML (this processor's config) and
evaluated column-wise with pyarrow compute.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from sovtel.component import ComponentConfig, ComponentContext
from sovtel.records import ATTRIBUTE_COLUMNS, SCHEMAS, Batch
from sovtel.routing import STRICTNESS, TIERS, Tier, counter_on, identifiable

_BY_STRICTNESS = sorted(TIERS, key=lambda t: STRICTNESS[t])  # index = strictness


class Condition(ComponentConfig):
    """One test on a record. Give ``column`` or ``attribute``, and one of ``in``, ``matches``, ``at_least``
    or ``missing``. An attribute is looked up in the record's attributes, then its resource's."""

    column: str | None = Field(default=None, description="A typed column, e.g. pii_count, operation, request_model.")
    attribute: str | None = Field(default=None, description="An attribute key, e.g. sovtel.workload.class.")
    in_: list[str] | None = Field(default=None, alias="in", description="The value is one of these.")
    matches: str | None = Field(default=None, description="The value matches this regular expression (search).")
    at_least: float | None = Field(default=None, description="The numeric column is at least this.")
    missing: bool | None = Field(default=None, description="True: the value is absent or empty.")
    negate: bool = Field(default=False, description="Invert the test.")

    model_config = ComponentConfig.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _one_subject_one_test(self) -> Condition:
        if (self.column is None) == (self.attribute is None):
            raise ValueError("give exactly one of column or attribute")
        tests = [n for n in ("in_", "matches", "at_least", "missing") if getattr(self, n) is not None]
        if len(tests) != 1:
            raise ValueError("give exactly one of in, matches, at_least or missing")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches: not a regular expression ({exc})") from None
        if self.at_least is not None and self.attribute is not None:
            raise ValueError("at_least applies to a numeric column, not an attribute")
        return self


class Rule(ComponentConfig):
    """Records meeting every condition are at least ``tier``."""

    name: str
    when: list[Condition] = Field(min_length=1)
    tier: Tier


DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "pii-found", "when": [{"column": "pii_count", "at_least": 1}], "tier": "sovereign"},
    {
        "name": "ai-act-high-risk",
        "when": [{"attribute": "sovtel.workload.class", "in": ["high-risk", "ai-act-high-risk"]}],
        "tier": "local",
    },
)


class Config(ComponentConfig):
    """Processor ``classify``: mandatory tags, content and workload rules → tier (stricter only)."""

    required_resource_tags: list[str] = Field(
        default_factory=lambda: ["cloud.region", "deployment.environment|deployment.environment.name"],
        description="Resource attributes every record must carry ('a|b': either); missing → local.",
    )
    require_declared_tier: bool = Field(
        default=True, description="A record without a sovtel.tier tag is unclassifiable → local."
    )
    rules: list[Rule] = Field(default_factory=lambda: [Rule.model_validate(r) for r in DEFAULT_RULES])

    @field_validator("required_resource_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or any(not part for part in tag.split("|")):
                raise ValueError(f"{tag!r} is not an attribute key (or 'a|b' alternatives)")
        return value


def validate_config(cfg: Config) -> list[str]:
    """Rules naming columns that no signal has."""
    known = {name for schema in SCHEMAS.values() for name in schema.names}
    return [
        f"rules[{i}] ({rule.name}).when[{j}]: unknown column {cond.column!r}"
        for i, rule in enumerate(cfg.rules)
        for j, cond in enumerate(rule.when)
        if cond.column is not None and cond.column not in known
    ]


def _lookup(table: pa.Table, key: str, columns: tuple[str, ...]) -> pa.Array:
    """The attribute's value per row: the first of ``columns`` (record first, then resource) that has it."""
    out: Any = None
    for name in columns:
        if name not in table.column_names:
            continue
        col = table.column(name).combine_chunks()
        found = pc.map_lookup(col, pa.scalar(key), "first")
        out = found if out is None else pc.coalesce(out, found)
    if out is None:
        return pa.nulls(table.num_rows, pa.string())
    return out


def _empty(values: Any) -> Any:
    return pc.fill_null(pc.equal(pc.binary_length(values), 0), True)


class Classify:
    """Computes the tier column of each batch; runs on receiver threads."""

    def __init__(self, ctx: ComponentContext, cfg: Config) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.required = [tuple(tag.split("|")) for tag in cfg.required_resource_tags]
        registry = ctx.telemetry.telemetry.registry
        self.classified = counter_on(
            registry, "sovtel_classified_records", "Records classified, by resulting tier.",
            ["component", "signal", "tier"],
        )
        self.raised = counter_on(
            registry, "sovtel_tier_raised_records", "Records made stricter than their declared tier, by reason.",
            ["component", "signal", "reason"],
        )

    def _condition(self, table: pa.Table, signal_attr_cols: tuple[str, ...], cond: Condition) -> Any:
        n = table.num_rows
        if cond.column is not None:
            if cond.column not in table.column_names:
                # A column this signal lacks: the value is absent.
                values: Any = pa.nulls(n, pa.string())
            else:
                values = table.column(cond.column)
        else:
            values = _lookup(table, str(cond.attribute), signal_attr_cols)
        if cond.missing is not None:
            if pa.types.is_string(values.type) or pa.types.is_null(values.type):
                result = _empty(values.cast(pa.string()))
            else:
                result = pc.is_null(values)
            if not cond.missing:
                result = pc.invert(result)
        elif cond.at_least is not None:
            if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                result = pa.array(np.zeros(n, dtype=bool))
            else:
                result = pc.greater_equal(values, pa.scalar(cond.at_least))
        elif cond.in_ is not None:
            result = pc.is_in(values.cast(pa.string()), value_set=pa.array(cond.in_, pa.string()))
        else:
            result = pc.match_substring_regex(values.cast(pa.string()), str(cond.matches))
        result = pc.fill_null(result, False)
        return pc.invert(result) if cond.negate else result

    def __call__(self, batch: Batch) -> Batch:
        """The batch with its tier column set; rows are never dropped here."""
        table = batch.table
        n = table.num_rows
        if n == 0 or "tier" not in table.column_names:
            return batch
        attr_cols = ATTRIBUTE_COLUMNS[batch.signal]
        record_first = (*attr_cols[1:], attr_cols[0])
        declared = table.column("tier").combine_chunks()
        # Strictness per row: declared tier's, unknown/empty → local (2).
        strict = np.full(n, STRICTNESS[Tier.LOCAL.value], dtype=np.int8)
        for tier in TIERS:
            mask = pc.fill_null(pc.equal(declared, pa.scalar(tier)), False).to_numpy(zero_copy_only=False)
            strict[mask] = STRICTNESS[tier]
        reasons: dict[str, int] = {}
        if not self.cfg.require_declared_tier:
            strict[_empty(declared).to_numpy(zero_copy_only=False)] = STRICTNESS[Tier.SOVEREIGN.value]
        unclassified = np.zeros(n, dtype=bool)
        resource_col = attr_cols[0]
        for alternatives in self.required:
            present = np.zeros(n, dtype=bool)
            for key in alternatives:
                present |= pc.invert(_empty(_lookup(table, key, (resource_col,)))).to_numpy(zero_copy_only=False)
            unclassified |= ~present
        if unclassified.any():
            reasons["missing_required_tag"] = int((unclassified & (strict < 2)).sum())
            strict[unclassified] = STRICTNESS[Tier.LOCAL.value]
        for rule in self.cfg.rules:
            hit: Any = None
            for cond in rule.when:
                c = self._condition(table, record_first, cond)
                hit = c if hit is None else pc.and_(hit, c)
            mask = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
            floor = STRICTNESS[rule.tier.value]
            raised = mask & (strict < floor)
            if raised.any():
                reasons[f"rule:{rule.name}"] = int(raised.sum())
                strict[raised] = floor
        # Public only for rows that identify no one; otherwise sovereign.
        public = strict == STRICTNESS[Tier.PUBLIC.value]
        if public.any():
            bad = np.asarray(identifiable(batch.signal, table).to_numpy(zero_copy_only=False), dtype=bool) & public
            if bad.any():
                reasons["public_identifiable"] = int(bad.sum())
                strict[bad] = STRICTNESS[Tier.SOVEREIGN.value]
        names = pa.array(_BY_STRICTNESS, pa.string())
        tier_col = pc.take(names, pa.array(strict.astype(np.int32)))
        name, signal = self.ctx.name, batch.signal.value
        for reason, count in reasons.items():
            if count:
                self.raised.labels(name, signal, reason).inc(count)
        for level, count in enumerate(np.bincount(strict, minlength=len(TIERS))):
            if count:
                self.classified.labels(name, signal, _BY_STRICTNESS[level]).inc(int(count))
        i = table.schema.get_field_index("tier")
        return batch.replace(table.set_column(i, table.schema.field("tier"), tier_col))


def create(ctx: ComponentContext, config: Config) -> Classify:
    """The component factory the runtime calls."""
    return Classify(ctx, config)
