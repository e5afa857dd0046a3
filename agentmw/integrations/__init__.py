"""Integrations with model SDKs: `instrument(client)` runs an SDK client's calls as turns.

`agentmw.integrations.openai` and `agentmw.integrations.anthropic` hold the per-SDK details;
`instrument` here picks one by the client's package.
"""

from __future__ import annotations

from typing import TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations import anthropic, openai
from agentmw.integrations._wrap import AsyncTurnStream, TurnStream

__all__ = ["AsyncTurnStream", "TurnStream", "instrument"]

C = TypeVar("C")


def instrument(client: C, *, stack: Stack | None = None, model_from_kwargs: bool = True) -> C:
    """Instrument an OpenAI or Anthropic client in place and return it.

    See `agentmw.integrations.openai.instrument` and `agentmw.integrations.anthropic.instrument`.

    Raises:
        TypeError: the client is from neither SDK.
    """
    package = type(client).__module__.partition(".")[0]
    if package == "openai":
        return openai.instrument(client, stack=stack, model_from_kwargs=model_from_kwargs)
    if package == "anthropic":
        return anthropic.instrument(client, stack=stack, model_from_kwargs=model_from_kwargs)
    raise TypeError(
        f"instrument() knows openai and anthropic clients, got {type(client).__module__}."
        f"{type(client).__name__}; decorate your own call with @agent_turn instead"
    )
