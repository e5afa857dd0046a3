"""OpenAI: run `chat.completions.create` and `responses.create` through a stack as turns.

Needs the `openai` package only for the client you pass in (`pip install agentmw[openai]`);
this module imports without it. Usage (cached and reasoning tokens included), Retry-After and
error classification work on the SDK's own objects through agentmw's built-in extraction.
"""

from __future__ import annotations

from typing import Any, TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations._wrap import instrument_client

__all__ = ["instrument", "provider_name"]

C = TypeVar("C")

_RESOURCES = {"chat.completions": "chat.completions.create", "responses": "responses.create"}
# Azure OpenAI endpoints; any other base URL (api.openai.com, proxies, local servers) is openai.
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com")


def provider_name(client: Any) -> str:
    """The `gen_ai.provider.name` of an OpenAI client: `azure.ai.openai` or `openai`.

    Azure is recognized by the client class (`AzureOpenAI`, `AsyncAzureOpenAI`) or by a base URL
    on `*.openai.azure.com` / `*.cognitiveservices.azure.com`.
    """
    if "Azure" in type(client).__name__:
        return "azure.ai.openai"
    host = str(getattr(getattr(client, "base_url", None), "host", "") or "").lower()
    if host.endswith(_AZURE_HOSTS):
        return "azure.ai.openai"
    return "openai"


def instrument(client: C, *, stack: Stack | None = None, model_from_kwargs: bool = True) -> C:
    """Run the client's `chat.completions.create` and `responses.create` as turns through a stack.

    The client is instrumented in place and returned (the same object); instrumenting it again
    replaces the earlier wrapper, never nests it. Works on `OpenAI`, `AsyncOpenAI` and the Azure
    clients. Every call gets `call.provider` (see `provider_name`) for Telemetry.
    `create(stream=True)` returns a `TurnStream` (`AsyncTurnStream` on async clients) that
    iterates the SDK's chunks after they pass the stack's stream path.

    Create the client with `max_retries=0` when the stack has `Retry`; otherwise a
    `RuntimeWarning` says once that both would retry.

    Args:
        client: an `openai.OpenAI`-like client.
        stack: a fixed stack; default: the current session's stack, else the process default.
        model_from_kwargs: take each turn's model from the call's `model=` argument (so Fallback
            and Policy can switch it); False leaves `call.model` unset.

    Raises:
        TypeError: the client has neither `chat.completions` nor `responses`.
    """
    done = instrument_client(
        client,
        _RESOURCES,
        provider=provider_name(client),
        stack=stack,
        model_from_kwargs=model_from_kwargs,
    )
    if not done:
        raise TypeError(
            f"{type(client).__name__} has no chat.completions.create or responses.create"
        )
    return client
