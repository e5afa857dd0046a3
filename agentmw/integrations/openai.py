"""OpenAI: every model call of an `OpenAI` / `AsyncOpenAI` client through a stack as a turn.

Needs the `openai` package only for the client you pass in (`pip install agentmw[openai]`);
this module imports without it. Covered: Chat Completions (`create`, `parse`, the `stream`
helper), Responses (`create`, `parse`, `stream`, and their `beta` twins), `embeddings.create`,
each also through `with_raw_response` / `with_streaming_response`, on the client and on every
client derived with `with_options()` / `copy()`. Other model calls warn
(`UninstrumentedCallWarning`); see `docs/integrations.md` for the table.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from agentmw.core.stack import Stack
from agentmw.integrations._echoes import ResponseEchoes
from agentmw.integrations._stainless import Routes, install
from agentmw.integrations._wrap import Settings, check_stack

__all__ = ["ROUTES", "instrument", "provider_name"]

C = TypeVar("C")

ROUTES = Routes(
    sdk="openai",
    resources="openai.resources.",
    covered={
        "/chat/completions": "chat.completions.create",
        "/responses": "responses.create",
        "/embeddings": "embeddings.create",
    },
    uncovered=tuple(
        re.compile(p)
        for p in (
            r"^/completions$",
            r"^/images/(generations|edits|variations)$",
            r"^/audio/(speech|transcriptions|translations)$",
            r"^/moderations$",
            r"^/videos($|/[^/]+/(remix|edits?|extensions?)$)",
            r"^/threads(/[^/]+)?/runs$",
            r"^/threads/[^/]+/runs/[^/]+/submit_tool_outputs$",
            r"^/responses/compact$",
        )
    ),
    not_calls=tuple(
        re.compile(p)
        for p in (
            r"^/responses/input_tokens$",  # a token count
            r"^/(assistants|agents)(/[^/]+)?$",  # configuration objects that name a model
            r"^/fine_tuning/",  # training jobs
            r"^/realtime/(sessions|client_secrets|transcription_sessions)$",  # ephemeral keys
            r"^/realtime/calls/[^/]+/accept$",  # accepting a SIP call configures the session
        )
    ),
    connects=(
        "realtime",
        "beta.realtime",
        "realtime.translations",
        "responses",
        "beta.responses",
    ),
    fixes={"responses.create": ResponseEchoes},
)
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
    """Run every model call of the client as a turn through a stack.

    The client is instrumented in place and returned (the same object); instrumenting it again
    replaces the settings (the last call wins), never nests. Works on `OpenAI`, `AsyncOpenAI`
    and the Azure clients, on resources and `with_raw_response` / `with_streaming_response`
    wrappers accessed before or after, and on the clients `with_options()` / `copy()` derive.
    Every call gets `call.provider` (see `provider_name`) for Telemetry. `create(stream=True)`
    returns a `TurnStream` (`AsyncTurnStream` on async clients) of the SDK's chunks after they
    pass the stack's stream path; the stream helpers (`chat.completions.stream()`,
    `responses.stream()`) are built on it, so their events carry the guarded text.

    Create the client with `max_retries=0` when the stack has `Retry`; otherwise a
    `RuntimeWarning` says once that both would retry.

    Args:
        client: an `openai.OpenAI`-like client.
        stack: a fixed stack; default: the current session's stack, else the process default.
        model_from_kwargs: take each turn's model from the request's `model` (so Fallback
            and Policy can switch it); False leaves `call.model` unset.

    Raises:
        TypeError: the client is no OpenAI client (it has no `request` and `copy`), or `stack`
            is neither a `Stack` nor None.
    """
    if not callable(getattr(type(client), "request", None)) or not hasattr(client, "copy"):
        raise TypeError(
            f"{type(client).__name__} has no chat.completions.create or responses.create"
        )
    settings = Settings(provider_name(client), check_stack(stack), model_from_kwargs)
    install(client, ROUTES, settings)
    return client
