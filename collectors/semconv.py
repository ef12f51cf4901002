"""Attribute names (OpenTelemetry GenAI and general semantic conventions) that become typed columns.

Each table maps an attribute key to ``(column, rank)``: rank 0 is the current name, higher ranks are
older or less specific names used only when no lower rank is present on the same record.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class Kind(enum.Enum):
    """How an attribute value is converted for its typed column."""

    STR = "str"  # any value, as text (arrays and maps as compact JSON)
    UINT32 = "uint32"  # integer counts (strings of digits and integral doubles accepted), clamped at 0
    FLOAT = "float"  # seconds and other measures (ints and numeric strings accepted)
    STRLIST = "strlist"  # string arrays (a single string becomes a one-element list)


# GenAI request and response (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # older name of gen_ai.provider.name
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # older name of input_tokens
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"  # older name of output_tokens
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_SERVER_TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"  # noqa: S105 - a name, not a secret
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
ERROR_TYPE = "error.type"

# GenAI content (opt-in in the conventions; personal data until the privacy processors ran).
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"
GEN_AI_PROMPT = "gen_ai.prompt"  # older content attribute, on spans or gen_ai.content.prompt events
GEN_AI_COMPLETION = "gen_ai.completion"  # older, on spans or gen_ai.content.completion events
GEN_AI_CONTENT_PROMPT_EVENT = "gen_ai.content.prompt"
GEN_AI_CONTENT_COMPLETION_EVENT = "gen_ai.content.completion"

# Subjects and placement.
USER_ID = "user.id"
ENDUSER_ID = "enduser.id"  # older name of user.id
SESSION_ID = "session.id"
SERVICE_NAME = "service.name"
HOST_NAME = "host.name"
K8S_NODE_NAME = "k8s.node.name"
SOVTEL_TENANT = "sovtel.tenant"
TENANT_ID = "tenant.id"
SOVTEL_TIER = "sovtel.tier"
EVENT_NAME = "event.name"  # older log attribute; LogRecord.event_name replaces it

COLUMN_KINDS: Mapping[str, Kind] = MappingProxyType(
    {
        "operation": Kind.STR,
        "provider": Kind.STR,
        "request_model": Kind.STR,
        "response_model": Kind.STR,
        "input_tokens": Kind.UINT32,
        "output_tokens": Kind.UINT32,
        "cache_read_tokens": Kind.UINT32,
        "reasoning_tokens": Kind.UINT32,
        "ttft_s": Kind.FLOAT,
        "finish_reasons": Kind.STRLIST,
        "error_type": Kind.STR,
        "conversation_id": Kind.STR,
        "user_id": Kind.STR,
        "session_id": Kind.STR,
        "tenant_id": Kind.STR,
        "tier": Kind.STR,
        "service_name": Kind.STR,
        "node": Kind.STR,
        "event_name": Kind.STR,
        "input_messages": Kind.STR,
        "output_messages": Kind.STR,
        "system_instructions": Kind.STR,
        "tool_call_arguments": Kind.STR,
        "tool_call_result": Kind.STR,
        "retrieval_documents": Kind.STR,
    }
)

# The subject and tier keys are also honoured per span or record (rank after nothing on the record
# itself), because a shared inference gateway serves many tenants under one resource; the
# resource's value applies when the record carries none.
_RECORD_PLACEMENT: dict[str, tuple[str, int]] = {
    SOVTEL_TENANT: ("tenant_id", 0),
    TENANT_ID: ("tenant_id", 1),
    SOVTEL_TIER: ("tier", 0),
}

SPAN_ATTRIBUTES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        GEN_AI_OPERATION_NAME: ("operation", 0),
        GEN_AI_PROVIDER_NAME: ("provider", 0),
        GEN_AI_SYSTEM: ("provider", 1),
        GEN_AI_REQUEST_MODEL: ("request_model", 0),
        GEN_AI_RESPONSE_MODEL: ("response_model", 0),
        GEN_AI_USAGE_INPUT_TOKENS: ("input_tokens", 0),
        GEN_AI_USAGE_PROMPT_TOKENS: ("input_tokens", 1),
        GEN_AI_USAGE_OUTPUT_TOKENS: ("output_tokens", 0),
        GEN_AI_USAGE_COMPLETION_TOKENS: ("output_tokens", 1),
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: ("cache_read_tokens", 0),
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: ("reasoning_tokens", 0),
        GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: ("ttft_s", 0),
        GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: ("ttft_s", 1),
        GEN_AI_RESPONSE_FINISH_REASONS: ("finish_reasons", 0),
        GEN_AI_CONVERSATION_ID: ("conversation_id", 0),
        ERROR_TYPE: ("error_type", 0),
        USER_ID: ("user_id", 0),
        ENDUSER_ID: ("user_id", 1),
        SESSION_ID: ("session_id", 0),
        GEN_AI_INPUT_MESSAGES: ("input_messages", 0),
        GEN_AI_PROMPT: ("input_messages", 1),
        GEN_AI_OUTPUT_MESSAGES: ("output_messages", 0),
        GEN_AI_COMPLETION: ("output_messages", 1),
        GEN_AI_SYSTEM_INSTRUCTIONS: ("system_instructions", 0),
        GEN_AI_TOOL_CALL_ARGUMENTS: ("tool_call_arguments", 0),
        GEN_AI_TOOL_CALL_RESULT: ("tool_call_result", 0),
        GEN_AI_RETRIEVAL_DOCUMENTS: ("retrieval_documents", 0),
        **_RECORD_PLACEMENT,
    }
)

# Content carried on span events (the older gen_ai.content.* events, and newer events that carry
# gen_ai.input.messages and friends) fills the content columns when the span attributes did not,
# so content never stays in a free-form attribute map that the privacy processors do not scan.
EVENT_ATTRIBUTES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        GEN_AI_INPUT_MESSAGES: ("input_messages", 2),
        GEN_AI_PROMPT: ("input_messages", 3),
        GEN_AI_OUTPUT_MESSAGES: ("output_messages", 2),
        GEN_AI_COMPLETION: ("output_messages", 3),
        GEN_AI_SYSTEM_INSTRUCTIONS: ("system_instructions", 2),
        GEN_AI_TOOL_CALL_ARGUMENTS: ("tool_call_arguments", 2),
        GEN_AI_TOOL_CALL_RESULT: ("tool_call_result", 2),
        GEN_AI_RETRIEVAL_DOCUMENTS: ("retrieval_documents", 2),
    }
)

RESOURCE_ATTRIBUTES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        SERVICE_NAME: ("service_name", 0),
        HOST_NAME: ("node", 0),
        K8S_NODE_NAME: ("node", 1),
        SOVTEL_TENANT: ("tenant_id", 0),
        TENANT_ID: ("tenant_id", 1),
        SOVTEL_TIER: ("tier", 0),
    }
)

LOG_ATTRIBUTES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        USER_ID: ("user_id", 0),
        ENDUSER_ID: ("user_id", 1),
        EVENT_NAME: ("event_name", 1),
        **_RECORD_PLACEMENT,
    }
)

METRIC_ATTRIBUTES: Mapping[str, tuple[str, int]] = MappingProxyType(dict(_RECORD_PLACEMENT))
