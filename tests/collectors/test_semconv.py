"""GenAI semantic-convention names, current and older, map onto the typed span columns."""

from __future__ import annotations

import pytest

from collectors import semconv
from collectors.otlp.decode import decode_traces
from tests.collectors.otlp.builders import genai_request


def decoded(attributes: dict) -> dict:
    """The single decoded span carrying ``attributes``."""
    req = genai_request(1, span_attributes=lambda _i: attributes)
    payload = req.SerializeToString()
    fast, exact = decode_traces(payload), decode_traces(payload, exact=True)
    assert fast.equals(exact)
    return fast.to_pylist()[0]


CURRENT_AND_OLDER = [
    # (attribute, value, column, expected column value)
    ("gen_ai.operation.name", "chat", "operation", "chat"),
    ("gen_ai.provider.name", "openai", "provider", "openai"),
    ("gen_ai.system", "openai", "provider", "openai"),
    ("gen_ai.request.model", "gpt-4o", "request_model", "gpt-4o"),
    ("gen_ai.response.model", "gpt-4o-2024", "response_model", "gpt-4o-2024"),
    ("gen_ai.usage.input_tokens", 120, "input_tokens", 120),
    ("gen_ai.usage.prompt_tokens", 120, "input_tokens", 120),
    ("gen_ai.usage.output_tokens", 30, "output_tokens", 30),
    ("gen_ai.usage.completion_tokens", 30, "output_tokens", 30),
    ("gen_ai.usage.cache_read.input_tokens", 64, "cache_read_tokens", 64),
    ("gen_ai.usage.reasoning.output_tokens", 12, "reasoning_tokens", 12),
    ("gen_ai.response.time_to_first_chunk", 0.25, "ttft_s", 0.25),
    ("gen_ai.server.time_to_first_token", 0.25, "ttft_s", 0.25),
    ("gen_ai.response.finish_reasons", ["stop", "length"], "finish_reasons", ["stop", "length"]),
    ("gen_ai.conversation.id", "conv-1", "conversation_id", "conv-1"),
    ("error.type", "timeout", "error_type", "timeout"),
    ("user.id", "u-1", "user_id", "u-1"),
    ("enduser.id", "u-1", "user_id", "u-1"),
    ("session.id", "s-1", "session_id", "s-1"),
    ("gen_ai.input.messages", '[{"role":"user"}]', "input_messages", '[{"role":"user"}]'),
    ("gen_ai.prompt", "hello", "input_messages", "hello"),
    ("gen_ai.output.messages", '[{"role":"assistant"}]', "output_messages", '[{"role":"assistant"}]'),
    ("gen_ai.completion", "hi", "output_messages", "hi"),
    ("gen_ai.system_instructions", "be brief", "system_instructions", "be brief"),
    ("gen_ai.tool.call.arguments", '{"city":"Oslo"}', "tool_call_arguments", '{"city":"Oslo"}'),
    ("gen_ai.tool.call.result", '{"t":3}', "tool_call_result", '{"t":3}'),
    ("gen_ai.retrieval.documents", '[{"id":"d1"}]', "retrieval_documents", '[{"id":"d1"}]'),
    ("sovtel.tenant", "acme-2", "tenant_id", "acme-2"),
    ("sovtel.tier", "sovereign", "tier", "sovereign"),
]


@pytest.mark.parametrize(("key", "value", "column", "expected"), CURRENT_AND_OLDER)
def test_attribute_fills_its_column_and_leaves_the_map(key, value, column, expected):
    """Each current or older attribute name fills its typed column and is removed from the map."""
    span = decoded({key: value, "other": "kept"})
    assert span[column] == expected
    assert span["span_attributes"] == [("other", "kept")]


@pytest.mark.parametrize(
    ("current", "older", "column"),
    [
        ("gen_ai.provider.name", "gen_ai.system", "provider"),
        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "input_tokens"),
        ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "output_tokens"),
        ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token", "ttft_s"),
        ("user.id", "enduser.id", "user_id"),
        ("gen_ai.input.messages", "gen_ai.prompt", "input_messages"),
        ("gen_ai.output.messages", "gen_ai.completion", "output_messages"),
    ],
)
@pytest.mark.parametrize("older_first", [True, False])
def test_current_name_wins_over_older_name(current, older, column, older_first):
    """When both names are present the current one fills the column, whatever their order."""
    kind = semconv.COLUMN_KINDS[column]
    new_value, old_value = {
        semconv.Kind.STR: ("new", "old"),
        semconv.Kind.UINT32: (7, 9),
        semconv.Kind.FLOAT: (0.5, 0.9),
    }[kind]
    pairs = [(older, old_value), (current, new_value)]
    if not older_first:
        pairs.reverse()
    span = decoded(dict(pairs))
    assert span[column] == new_value
    assert span["span_attributes"] == []


@pytest.mark.parametrize(
    ("value", "tokens", "stays_in_map"),
    [
        (42, 42, False),
        ("42", 42, False),
        (" 42 ", 42, False),
        (42.0, 42, False),
        (-5, 0, False),
        (2**40, 2**32 - 1, False),
        ("forty-two", 0, True),
        (42.5, 0, True),
        (True, 0, True),
        ([1, 2], 0, True),
    ],
)
def test_token_counts_convert_or_stay_in_the_map(value, tokens, stays_in_map):
    """Token counts accept ints, numeric strings and whole doubles (clamped to uint32); others stay as attributes."""
    span = decoded({"gen_ai.usage.input_tokens": value})
    assert span["input_tokens"] == tokens
    assert bool(span["span_attributes"]) is stays_in_map


@pytest.mark.parametrize(
    ("value", "ttft", "stays_in_map"),
    [(0.125, 0.125, False), (2, 2.0, False), ("0.5", 0.5, False), ("soon", None, True), (False, None, True)],
)
def test_time_to_first_token_converts_or_stays_in_the_map(value, ttft, stays_in_map):
    """TTFT accepts doubles, ints and numeric strings; anything else stays as an attribute and TTFT is null."""
    span = decoded({"gen_ai.response.time_to_first_chunk": value})
    assert span["ttft_s"] == ttft
    assert bool(span["span_attributes"]) is stays_in_map


@pytest.mark.parametrize(
    ("value", "reasons", "stays_in_map"),
    [
        (["stop"], ["stop"], False),
        ([], [], False),
        ("stop", ["stop"], False),
        (["stop", 3, True], ["stop", "3", "true"], False),
        (3, [], True),
        ({"a": "b"}, [], True),
    ],
)
def test_finish_reasons_convert_or_stay_in_the_map(value, reasons, stays_in_map):
    """Finish reasons accept string arrays (and a single string); other values stay as attributes."""
    span = decoded({"gen_ai.response.finish_reasons": value})
    assert span["finish_reasons"] == reasons
    assert bool(span["span_attributes"]) is stays_in_map


def test_structured_content_becomes_compact_json():
    """Content sent as structured values (not JSON strings) is kept as compact JSON text."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Hej, jag heter Åsa"}]}]
    span = decoded({"gen_ai.input.messages": messages})
    assert span["input_messages"] == '[{"role":"user","parts":[{"type":"text","content":"Hej, jag heter Åsa"}]}]'


def test_every_table_targets_a_known_column():
    """Every semantic-convention table maps onto a column with a declared kind."""
    tables = (
        semconv.SPAN_ATTRIBUTES,
        semconv.EVENT_ATTRIBUTES,
        semconv.RESOURCE_ATTRIBUTES,
        semconv.LOG_ATTRIBUTES,
        semconv.METRIC_ATTRIBUTES,
    )
    for table in tables:
        for column, rank in table.values():
            assert column in semconv.COLUMN_KINDS
            assert rank >= 0
