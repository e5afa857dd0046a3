"""Anthropic: run `messages.create` through a stack as turns.

Needs the `anthropic` package only for the client you pass in (`pip install agentmw[anthropic]`);
this module imports without it. A streamed call's usage combines `message_start` (input, cache
reads and writes) with the last `message_delta` (output).
"""

from __future__ import annotations

from typing import Any, TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations._wrap import instrument_client

__all__ = ["instrument", "provider_name"]

C = TypeVar("C")

_RESOURCES = {"messages": "messages.create"}


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
    """Run the client's `messages.create` as turns through a stack.

    The client is instrumented in place and returned; instrumenting again replaces the earlier
    wrapper. Works on `Anthropic` and `AsyncAnthropic`. `create(stream=True)` returns a
    `TurnStream` (`AsyncTurnStream`) of the SDK's stream events. Create the client with
    `max_retries=0` when the stack has `Retry` (a `RuntimeWarning` says so once otherwise).

    Args:
        client: an `anthropic.Anthropic`-like client.
        stack: a fixed stack; default: the current session's stack, else the process default.
        model_from_kwargs: take each turn's model from the call's `model=` argument; False
            leaves `call.model` unset.

    Raises:
        TypeError: the client has no `messages.create`.
    """
    done = instrument_client(
        client,
        _RESOURCES,
        provider=provider_name(client),
        stack=stack,
        model_from_kwargs=model_from_kwargs,
    )
    if not done:
        raise TypeError(f"{type(client).__name__} has no messages.create")
    return client
