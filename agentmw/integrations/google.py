"""Google Gen AI (`google-genai`): Gemini calls of a `genai.Client` through a stack as turns.

Needs the `google-genai` package only for the client you pass in (`pip install
agentmw[google]`); this module imports without it. `client.models.generate_content`,
`generate_content_stream` and their `client.aio` twins run each model request as a turn.
The SDK's own loops (automatic function calling, automatic continuation) call the model more
than once per method call: the gate is the one-request methods `_generate_content` and
`_generate_content_stream` of the client's `Models` objects, which every public path (and
`client.chats`) goes through, so each request is one turn with its own usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from agentmw.core.middleware import aclose
from agentmw.core.stack import Stack
from agentmw.integrations._bypass import ORIGINAL, BypassWarner, warn_on_call
from agentmw.integrations._streams import AsyncTurnStream, TurnStream
from agentmw.integrations._wrap import Settings, Turns, check_stack

__all__ = ["COVERED", "UNCOVERED", "instrument", "provider_name"]

C = TypeVar("C")
_STATE = "__agentmw__"

# Public method -> the one-request method it sends through (on `models` and `aio.models`).
COVERED = {
    "models.generate_content": "_generate_content",
    "models.generate_content_stream": "_generate_content_stream",
}
# Model calls agentmw does not run as turns: each warns once (`UninstrumentedCallWarning`).
UNCOVERED = (
    "models.embed_content",
    "models.generate_images",
    "models.edit_image",
    "models.upscale_image",
    "models.recontext_image",
    "models.segment_image",
    "models.generate_videos",
    "batches.create",
    "batches.create_embeddings",
    "tunings.tune",
    "interactions.create",
    "live.connect",
    "live.music.connect",
)


def provider_name(client: Any) -> str:
    """The `gen_ai.provider.name` of a Gen AI client: `gcp.vertex_ai` or `gcp.gemini`.

    The OpenTelemetry GenAI conventions name the Gemini Developer API `gcp.gemini` and Vertex
    AI (the client's `vertexai=True` / `enterprise=True` mode) `gcp.vertex_ai`.
    """
    return "gcp.vertex_ai" if getattr(client, "vertexai", False) else "gcp.gemini"


def _sync_functions() -> tuple[Callable[..., Any], Callable[..., Any]]:
    def send(original: Callable[..., Any], **kwargs: Any) -> Any:
        return original(**kwargs)

    def produce(original: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        yield from original(**kwargs)

    return send, produce


def _async_functions() -> tuple[Callable[..., Any], Callable[..., Any]]:
    async def send(original: Callable[..., Any], **kwargs: Any) -> Any:
        return await original(**kwargs)

    async def produce(original: Callable[..., Any], **kwargs: Any) -> AsyncIterator[Any]:
        chunks = await original(**kwargs)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await aclose(chunks)

    return send, produce


def _gates(models: Any, turns: Turns, opened: Callable[[Any], Any]) -> None:
    """Put the turn gates on one `Models` object (`client.models` or `client.aio.models`).

    Written once for both: the async SDK awaits what its `_generate_content` returns (here the
    turn's coroutine) and what `_generate_content_stream` returns (`opened`: the prefetched
    `AsyncTurnStream`); the sync SDK iterates the `TurnStream`.
    """
    send = getattr(models._generate_content, ORIGINAL, models._generate_content)
    produce = getattr(models._generate_content_stream, ORIGINAL, models._generate_content_stream)

    def _generate_content(**kwargs: Any) -> Any:
        return turns.get("models.generate_content", False)(send, **kwargs)

    def _generate_content_stream(**kwargs: Any) -> Any:
        return opened(turns.get("models.generate_content_stream", True)(produce, **kwargs))

    _install(models, _generate_content, send)
    _install(models, _generate_content_stream, produce)


def _install(owner: Any, wrapper: Callable[..., Any], original: Callable[..., Any]) -> None:
    setattr(wrapper, ORIGINAL, original)
    # An instance attribute shadows the class's method; the client keeps its `Models` objects.
    setattr(owner, wrapper.__name__, wrapper)


def _resolve(root: Any, path: str) -> Any:
    owner = root
    for part in path.split("."):
        try:
            owner = getattr(owner, part, None)
        except Exception:  # a lazily built resource that cannot be built here
            return None
        if owner is None:
            return None
    return owner


def instrument(client: C, *, stack: Stack | None = None, model_from_kwargs: bool = True) -> C:
    """Run the client's Gemini requests as turns through a stack (sync and `client.aio`).

    The client is instrumented in place and returned; instrumenting again replaces the settings
    (the last call wins). `generate_content_stream` yields chunks that passed the stack's stream
    path (guardrails hold back their window); usage comes from the chunks' `usage_metadata`.
    The other model-calling methods (`UNCOVERED`) warn once each. The SDK retries only when
    `HttpOptions(retry_options=...)` asks it to: leave that unset under `Retry`.

    Args:
        client: a `google.genai.Client`.
        stack: a fixed stack; default: the current session's stack, else the process default.
        model_from_kwargs: take each turn's model from the call's `model=`; False leaves
            `call.model` unset.

    Raises:
        TypeError: the client has no `models` and `aio.models`, or `stack` is neither a
            `Stack` nor None.
    """
    models = getattr(client, "models", None)
    aio = getattr(client, "aio", None)
    if models is None or aio is None or not hasattr(models, "_generate_content"):
        raise TypeError(f"{type(client).__name__} has no models.generate_content")
    settings = Settings(provider_name(client), check_stack(stack), model_from_kwargs)
    state: tuple[Turns, Turns] | None = client.__dict__.get(_STATE)
    if state is not None:
        for turns in state:
            turns.reset(settings)
        return client
    sync_turns = Turns(*_sync_functions(), settings)
    async_turns = Turns(*_async_functions(), settings)
    client.__dict__[_STATE] = (sync_turns, async_turns)
    _gates(models, sync_turns, TurnStream)
    _gates(aio.models, async_turns, lambda chunks: AsyncTurnStream(chunks)._prefetch())
    warner = BypassWarner("google-genai")
    for root, prefix in ((client, ""), (aio, "aio.")):
        for method in UNCOVERED:
            path, _, name = method.rpartition(".")
            owner = _resolve(root, path)
            if owner is not None:
                warn_on_call(owner, name, prefix + method, warner)
    return client
