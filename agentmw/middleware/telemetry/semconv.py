"""Every OpenTelemetry name agentmw emits, in one place.

The GenAI semantic conventions are still evolving: keeping the attribute, metric and bucket names
here as plain strings (not the deprecated enum classes of `opentelemetry-semantic-conventions`)
makes a later convention change one edit. The deprecated `gen_ai.system` is never emitted.
"""

from __future__ import annotations

# -- operations and span names ---------------------------------------------------------------
OP_INVOKE_AGENT = "invoke_agent"
OP_CHAT = "chat"
OP_EMBEDDINGS = "embeddings"
# Turn names the SDK integrations give embedding requests (their spans are `embeddings {model}`).
EMBEDDING_TURNS = ("embeddings.create",)
OP_EXECUTE_TOOL = "execute_tool"
TOOL_TYPE_FUNCTION = "function"

# -- attributes ------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
ERROR_TYPE = "error.type"

AGENTMW_COST_USD = "agentmw.cost_usd"
# Prefix of the attributes that carry an agentmw event's fields on a span event.
AGENTMW_EVENT_PREFIX = "agentmw."
AGENTMW_STEP = "agentmw.step"
AGENTMW_DETAIL = "agentmw.detail"
AGENTMW_FAILURE_CLASS = "agentmw.failure_class"
AGENTMW_BREAKER_STATE = "agentmw.breaker.state"

# -- environment -----------------------------------------------------------------------------
ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# -- metrics ---------------------------------------------------------------------------------
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_TOKEN_USAGE_UNIT = "{token}"
METRIC_TOKEN_USAGE_BUCKETS: tuple[float, ...] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_OPERATION_DURATION_UNIT = "s"
METRIC_OPERATION_DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
METRIC_COST = "agentmw.cost"
METRIC_COST_UNIT = "USD"
METRIC_RETRIES = "agentmw.retries"
METRIC_RETRIES_UNIT = "{retry}"
METRIC_BREAKER_TRANSITIONS = "agentmw.breaker.transitions"
METRIC_BREAKER_TRANSITIONS_UNIT = "{transition}"

# -- the agentmw events the counters follow --------------------------------------------------
EVENT_RETRY_SCHEDULED = "retry.scheduled"
BREAKER_TRANSITION_EVENTS = frozenset({"breaker.opened", "breaker.half_open", "breaker.closed"})
