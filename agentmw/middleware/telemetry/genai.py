"""Duck-typed readers that turn calls, responses and events into GenAI span attributes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from enum import Enum
from typing import Any

from opentelemetry.trace import SpanKind

from agentmw.core.call import Call
from agentmw.events import Event
from agentmw.middleware.telemetry import semconv as sc
from agentmw.usage import Usage

# Attribute builders for the Telemetry layer; internal, not public API.
__all__: list[str] = []

AttributeValue = str | bool | int | float | list[str]
_TRUTHY = frozenset({"1", "true", "yes", "on", "span_only", "event_only", "span_and_event"})

# Model-name prefixes that identify a provider when neither the layer's `provider_name` nor
# `call.provider` says; values are the `gen_ai.provider.name` well-known values.
_PROVIDER_PREFIXES = (
    ("gpt-", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude", "anthropic"),
    ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"),
    ("command", "cohere"),
)
UNKNOWN_PROVIDER = "unknown"


def provider_of(call: Call, configured: str | None) -> str:
    """The provider: the layer option, else `call.provider`, else from the model name."""
    if configured is not None:
        return configured
    named = call.provider
    if isinstance(named, str) and named:
        return named
    model = (call.model or "").lower()
    for prefix, provider in _PROVIDER_PREFIXES:
        if model.startswith(prefix):
            return provider
    return UNKNOWN_PROVIDER


def usage_attributes(usage: Usage) -> dict[str, AttributeValue]:
    """Token counts of a turn; the cache and reasoning counts only when non-zero."""
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.cache_read_tokens:
        attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    return attrs


def _reason(value: Any) -> str | None:
    """A finish reason as a plain string (Google's are `str` enums: their value)."""
    if isinstance(value, Enum):
        value = value.value
    return str(value) if isinstance(value, str) and value else None


def _finish_reasons(result: Any) -> list[str]:
    # OpenAI chat completions (and their chunks); Google Gen AI candidates
    for name in ("choices", "candidates"):
        items = getattr(result, name, None)
        if isinstance(items, (list, tuple)):
            reasons = [_reason(getattr(c, "finish_reason", None)) for c in items]
            return [r for r in reasons if r is not None]
    for name in ("stop_reason", "finish_reason"):  # Anthropic; agentmw.testing.Reply
        reason = _reason(getattr(result, name, None))
        if reason is not None:
            return [reason]
    return []


def _first_str(result: Any, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = getattr(result, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def response_attributes(result: Any) -> dict[str, AttributeValue]:
    """`gen_ai.response.model`, `.id` and `.finish_reasons`, when the response has them."""
    attrs: dict[str, AttributeValue] = {}
    if result is None or isinstance(result, (str, bytes, int, float)):
        return attrs
    if isinstance(result, StreamSummary):
        return dict(result.attrs)
    model = _first_str(result, ("model", "model_version"))  # Google: model_version
    if model is not None:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = model
    response_id = _first_str(result, ("id", "response_id"))  # Google: response_id
    if response_id is not None:
        attrs[sc.GEN_AI_RESPONSE_ID] = response_id
    reasons = _finish_reasons(result)
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return attrs


class StreamSummary:
    """The response attributes of a whole stream, from whichever chunk carries each one.

    OpenAI chat streams end with a usage chunk whose `choices` is empty (the finish reason came
    before it); Anthropic sends the model and id in `message_start` and the stop reason in
    `message_delta`; OpenAI Responses events nest the response; Google repeats them per chunk.
    Later chunks win; an empty finish-reason list never erases an earlier one.
    """

    __slots__ = ("attrs",)

    def __init__(self) -> None:
        self.attrs: dict[str, AttributeValue] = {}

    def observe(self, chunk: Any) -> None:
        if chunk is None or isinstance(chunk, (str, bytes, int, float)):
            return
        attrs = self.attrs
        attrs.update(response_attributes(chunk))
        for key in ("message", "response"):  # Anthropic message_start, Responses events
            nested = getattr(chunk, key, None)
            if nested is not None and not isinstance(nested, str):
                attrs.update(response_attributes(nested))
        delta = getattr(chunk, "delta", None)  # Anthropic message_delta: the stop reason
        if delta is not None and not isinstance(delta, str):
            reason = _reason(getattr(delta, "stop_reason", None))
            if reason is not None:
                attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):  # content blocks (OpenAI parts, Anthropic blocks)
        parts = []
        for block in content:
            text = block.get("text") if isinstance(block, Mapping) else getattr(block, "text", None)
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
        return parts
    return []


def input_messages(call: Call) -> str:
    """`gen_ai.input.messages`: a `messages=` list, else the string arguments as user text."""
    messages = call.kwargs.get("messages")
    out: list[dict[str, Any]] = []
    if isinstance(messages, (list, tuple)):
        for message in messages:
            if isinstance(message, Mapping):
                role = str(message.get("role", "user"))
                out.append({"role": role, "parts": _text_parts(message.get("content"))})
    else:
        texts = [v for v in (*call.args, *call.kwargs.values()) if isinstance(v, str)]
        out = [{"role": "user", "parts": _text_parts(t)} for t in texts if t != call.model]
    return _dumps(out)


def _output_text(result: Any) -> list[dict[str, Any]]:
    choices = getattr(result, "choices", None)
    if isinstance(choices, (list, tuple)) and choices:
        message = getattr(choices[0], "message", None)
        return _text_parts(getattr(message, "content", None))
    return _text_parts(getattr(result, "content", None) if not isinstance(result, str) else result)


def output_messages(result: Any) -> str:
    """`gen_ai.output.messages`: the response text as one assistant message."""
    message: dict[str, Any] = {"role": "assistant", "parts": _output_text(result)}
    reasons = _finish_reasons(result)
    if reasons:
        message["finish_reason"] = reasons[0]
    return _dumps([message])


def tool_arguments(call: Call) -> str:
    """`gen_ai.tool.call.arguments`: keyword arguments (positional ones under `args`)."""
    payload: dict[str, Any] = dict(call.kwargs)
    if call.args:
        payload["args"] = list(call.args)
    return _dumps(payload)


def tool_result(result: Any) -> str:
    """`gen_ai.tool.call.result`: the tool's return value as JSON (or its `str`)."""
    return result if isinstance(result, str) else _dumps(result)


def capture_from_environment() -> bool:
    """The default of the content-capture switch, from its environment variable."""
    value = os.environ.get(sc.ENV_CAPTURE_CONTENT, "")
    return value.strip().lower() in _TRUTHY


def event_attributes(event: Event, *, detail: bool = True) -> dict[str, AttributeValue]:
    """An agentmw event's fields as span-event attributes (scalar data values only).

    `detail=False` leaves out the event's `detail` (the OpenTelemetry event sink does unless
    content capture is on: a detail can be a policy rule's message).
    """
    attrs: dict[str, AttributeValue] = {}
    if event.step is not None:
        attrs[sc.AGENTMW_STEP] = event.step
    if detail and event.detail is not None:
        attrs[sc.AGENTMW_DETAIL] = event.detail
    if event.failure_class is not None:
        attrs[sc.AGENTMW_FAILURE_CLASS] = event.failure_class
    for key, value in event.data.items():
        if isinstance(value, (str, bool, int, float)):
            attrs[sc.AGENTMW_EVENT_PREFIX + key] = value
    return attrs


def start_attributes(
    call: Call, provider_name: str | None, capture: bool
) -> tuple[str, SpanKind, dict[str, AttributeValue], dict[str, AttributeValue]]:
    """A turn's or tool call's span name, kind, start attributes and metric attributes."""
    attrs: dict[str, AttributeValue]
    if call.kind == "turn":
        provider = provider_of(call, provider_name)
        op = sc.OP_EMBEDDINGS if call.name.endswith(sc.EMBEDDING_TURNS) else sc.OP_CHAT
        attrs = {sc.GEN_AI_OPERATION_NAME: op, sc.GEN_AI_PROVIDER_NAME: provider}
        if call.model:
            attrs[sc.GEN_AI_REQUEST_MODEL] = call.model
        metric_attrs = dict(attrs)
        if capture and op == sc.OP_CHAT:
            attrs[sc.GEN_AI_INPUT_MESSAGES] = input_messages(call)
        name = f"{op} {call.model}" if call.model else op
        return name, SpanKind.CLIENT, attrs, metric_attrs
    attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: call.name}
    metric_attrs = dict(attrs)
    attrs[sc.GEN_AI_TOOL_TYPE] = sc.TOOL_TYPE_FUNCTION
    call_id = call.tool_call_id
    if isinstance(call_id, str) and call_id:
        attrs[sc.GEN_AI_TOOL_CALL_ID] = call_id
    if capture:
        attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = tool_arguments(call)
    return f"{sc.OP_EXECUTE_TOOL} {call.name}", SpanKind.INTERNAL, attrs, metric_attrs


def end_attributes(
    call: Call, result: Any, error_type: str | None, cost: float | None, capture: bool
) -> dict[str, AttributeValue]:
    """The attributes known once a call ended (`result` is a stream's `StreamSummary`)."""
    attrs: dict[str, AttributeValue] = {}
    if call.kind == "turn":
        if error_type is None:
            attrs.update(response_attributes(result))
        if call.usage is not None:
            attrs.update(usage_attributes(call.usage))
        if cost is not None:
            attrs[sc.AGENTMW_COST_USD] = cost
    if error_type is not None:
        attrs[sc.ERROR_TYPE] = error_type
    elif capture and not call.stream:  # a stream's text is the consumer's to assemble
        if call.kind == "turn" and attrs.get(sc.GEN_AI_OPERATION_NAME) != sc.OP_EMBEDDINGS:
            attrs[sc.GEN_AI_OUTPUT_MESSAGES] = output_messages(result)
        else:
            attrs[sc.GEN_AI_TOOL_CALL_RESULT] = tool_result(result)
    return attrs
