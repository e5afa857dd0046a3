"""Integrations with model SDKs: `instrument(client)` runs an SDK client's model calls as turns.

`agentmw.integrations.openai`, `.anthropic` and `.google` hold the per-SDK details;
`instrument` here picks one by the client's package.
"""

from __future__ import annotations

from typing import TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations import anthropic, google, openai
from agentmw.integrations._streams import AsyncTurnStream, TurnStream

__all__ = ["AsyncTurnStream", "TurnStream", "instrument"]

C = TypeVar("C")


def instrument(client: C, *, stack: Stack | None = None, model_from_kwargs: bool = True) -> C:
    """Instrument an OpenAI, Anthropic or Google Gen AI client in place and return it.

    See `agentmw.integrations.openai.instrument`, `agentmw.integrations.anthropic.instrument`
    and `agentmw.integrations.google.instrument`.

    Raises:
        TypeError: the client is from none of these SDKs.
    """
    module = type(client).__module__
    package = module.partition(".")[0]
    if package == "openai":
        return openai.instrument(client, stack=stack, model_from_kwargs=model_from_kwargs)
    if package == "anthropic":
        return anthropic.instrument(client, stack=stack, model_from_kwargs=model_from_kwargs)
    if module.startswith("google.genai"):
        return google.instrument(client, stack=stack, model_from_kwargs=model_from_kwargs)
    raise TypeError(
        f"instrument() knows openai, anthropic and google-genai clients, got {module}."
        f"{type(client).__name__}; decorate your own call with @agent_turn instead"
    )
