"""Tests for processors.minimise: undeclared attribute keys and content never pass."""

from __future__ import annotations

import pyarrow as pa
import pytest

from processors.minimise import Config, KeyFilter, create, validate_config
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry


def ctx() -> ComponentContext:
    return ComponentContext(name="minimise", telemetry=Telemetry().component("minimise"))


def span_batch() -> Batch:
    table = table_from_columns(
        Signal.TRACES,
        {
            "trace_id": ["a" * 32, "b" * 32, "c" * 32],
            "resource_attributes": [
                [("service.name", "chat"), ("k8s.pod.name", "p-1"), ("owner.email", "x@y.eu")],
                [],
                [("telemetry.sdk.name", "opentelemetry")],
            ],
            "span_attributes": [
                [("gen_ai.request.temperature", "0.2"), ("http.user_agent", "Mozilla")],
                [("client.address", "10.1.2.3"), ("gen_ai.evaluation.score.value", "0.9")],
                [],
            ],
            "event_attributes": [[[("exception.type", "timeout"), ("exception.message", "user Anna")]], [], []],
            "input_messages": ['[{"role":"user"}]', "", "hello"],
        },
    )
    return Batch(Signal.TRACES, table)


class TestMinimise:
    def test_only_declared_keys_survive(self) -> None:
        """Keys not in the allow-list are removed from every map column, namespaces included."""
        c = ctx()
        out = create(c, Config())(span_batch())
        assert out.table.column("resource_attributes").to_pylist() == [
            [("service.name", "chat"), ("k8s.pod.name", "p-1")],
            [],
            [("telemetry.sdk.name", "opentelemetry")],
        ]
        assert out.table.column("span_attributes").to_pylist() == [
            [("gen_ai.request.temperature", "0.2")],
            [("gen_ai.evaluation.score.value", "0.9")],
            [],
        ]
        assert out.table.column("event_attributes").to_pylist() == [[[("exception.type", "timeout")]], [], []]
        tel = c.telemetry.telemetry
        assert tel.total("sovtel_removed_values_total", reason="attribute_not_allowed:resource_attributes") == 1
        assert tel.total("sovtel_removed_values_total", reason="attribute_not_allowed:span_attributes") == 2
        assert tel.total("sovtel_removed_values_total", reason="attribute_not_allowed:event_attributes") == 1

    def test_content_is_cleared_unless_the_purpose_keeps_it(self) -> None:
        """Prompt/completion columns are emptied by default and kept with keep_content."""
        out = create(ctx(), Config())(span_batch())
        assert out.table.column("input_messages").to_pylist() == ["", "", ""]
        kept = create(ctx(), Config(keep_content=True))(span_batch())
        assert kept.table.column("input_messages").to_pylist() == ['[{"role":"user"}]', "", "hello"]

    def test_rows_are_never_dropped(self) -> None:
        """Minimisation removes values, not records, and keeps the schema."""
        batch = span_batch()
        out = create(ctx(), Config(spans=[], resource=[]))(batch)
        assert out.rows == batch.rows
        assert out.table.schema == batch.table.schema
        assert out.table.column("span_attributes").to_pylist() == [[], [], []]

    def test_multi_chunk_columns_are_filtered(self) -> None:
        """Tables made of several chunks (concatenated batches) are filtered chunk by chunk."""
        b = span_batch()
        two = Batch(Signal.TRACES, pa.concat_tables([b.table, b.table]))
        out = create(ctx(), Config())(two)
        assert out.table.column("span_attributes").to_pylist()[3] == [("gen_ai.request.temperature", "0.2")]

    @pytest.mark.parametrize(
        ("keys", "key", "allowed"),
        [
            (["a.b"], "a.b", True),
            (["a.b"], "a.bc", False),
            (["a.*"], "a.b.c", True),
            (["a.*"], "ab", False),
            ([], "anything", False),
        ],
    )
    def test_key_filter(self, keys: list[str], key: str, allowed: bool) -> None:
        """Exact keys match exactly; 'prefix.*' matches the namespace only."""
        assert KeyFilter(keys).mask(pa.array([key])).to_pylist() == [allowed]

    @pytest.mark.parametrize("bad", ["", "*", "a*", "a.*.*", "*.b"])
    def test_malformed_wildcards_are_config_errors(self, bad: str) -> None:
        """Wildcards other than a trailing '.*' are rejected at validation."""
        assert validate_config(Config(spans=[bad]))
