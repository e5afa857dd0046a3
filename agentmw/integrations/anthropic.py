"""Anthropic: every model call of an `Anthropic` / `AsyncAnthropic` client through a stack.

Needs the `anthropic` package only for the client you pass in (`pip install agentmw[anthropic]`);
this module imports without it. Covered: `messages.create`, `messages.parse`, the
`messages.stream()` helper and their `beta.messages` twins (and the beta helpers built on them,
`tool_runner`), each also through `with_raw_response` / `with_streaming_response`, on the client
and on clients derived with `with_options()` / `copy()`. A streamed call's usage combines
`message_start` (input, cache reads and writes) with the last `message_delta` (output).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations._stainless import Routes, install
from agentmw.integrations._wrap import Settings, check_stack

__all__ = ["ROUTES", "instrument", "provider_name"]

C = TypeVar("C")

ROUTES = Routes(
    sdk="anthropic",
    resources="anthropic.resources.",
    covered={"/v1/messages": "messages.create"},
    uncovered=(re.compile(r"^/v1/complete$"),),
    not_calls=tuple(
        re.compile(p)
        for p in (
            r"^/v1/messages/count_tokens$",  # a token count
            r"^/v1/agents(/[^/]+)?$",  # configuration objects that name a model
        )
    ),
)


def provider_name(client: Any) -> str:
    """The `gen_ai.provider.name` of an Anthropic client.

    `aws.bedrock` for the Bedrock clients, `gcp.vertex_ai` for the Vertex ones, else `anthropic`.
    """
    cls = type(client).__name__
    if "Bedrock" in cls:
        return "aws.bedrock"
    if "Vertex" in cls:
        return "gcp.vertex_ai"
    return "anthropic"


def instrument(client: C, *, stack: Stack | None = None, model_from_kwargs: bool = True) -> C:
    """Run every model call of the client as a turn through a stack.

    The client is instrumented in place and returned; instrumenting again replaces the settings
    (the last call wins). Works on `Anthropic` and `AsyncAnthropic`, on resources and raw /
    streaming-response wrappers accessed before or after, and on derived clients.
    `create(stream=True)` returns a `TurnStream` (`AsyncTurnStream`) of the SDK's stream events;
    `messages.stream()` wraps it, so `text_stream` and `get_final_message()` carry the guarded
    text. Create the client with `max_retries=0` when the stack has `Retry` (a `RuntimeWarning`
    says so once otherwise).

    Args:
        client: an `anthropic.Anthropic`-like client.
        stack: a fixed stack; default: the current session's stack, else the process default.
        model_from_kwargs: take each turn's model from the request's `model`; False leaves
            `call.model` unset.

    Raises:
        TypeError: the client has no `messages.create`, or `stack` is neither a `Stack` nor
            None.
    """
    if not callable(getattr(type(client), "request", None)) or not hasattr(client, "copy"):
        raise TypeError(f"{type(client).__name__} has no messages.create")
    settings = Settings(provider_name(client), check_stack(stack), model_from_kwargs)
    install(client, ROUTES, settings)
    return client
