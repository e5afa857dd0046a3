"""pydantic-ai: every model request of an agent run as a turn, every tool execution as a tool.

Add the `AgentMW` capability (pydantic-ai's own extension point, `AbstractCapability`) to a
`pydantic_ai.Agent` (`capabilities=[AgentMW(agent)]`, or per run `run(..., capabilities=...)`):

- `wrap_run` runs the whole agent run inside an agentmw session: the current one when a
  session is open, else one opened (and closed) for the run from the agentmw `Agent`;
- `get_wrapper_model` wraps the model serving each request attempt in `AgentMWModel` (a
  `pydantic_ai.models.wrapper.WrapperModel`): `request` and `request_stream` are turns, usage
  from the response's `RequestUsage`, the model name from the wrapped model;
- `wrap_tool_execute` runs each tool execution as a tool call (the tool name, the validated
  arguments, the tool call id); a refusal becomes a `ToolFailed` the model reads, or raises.

Needs `pip install 'agentmw[pydantic-ai]'`; importing this module without pydantic-ai raises
an `ImportError` saying so. `import agentmw` never imports it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

try:
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.exceptions import ToolFailed
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelResponse,
        RetryPromptPart,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
    from pydantic_ai.models import (
        Model,
        ModelRequestParameters,
        StreamedResponse,
        infer_model,
    )
    from pydantic_ai.models.wrapper import WrapperModel
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.tools import RunContext, ToolDefinition
    from pydantic_ai.usage import RequestUsage
except ImportError as exc:  # pragma: no cover - exercised by blocking the import in a test
    raise ImportError(
        "agentmw.integrations.pydantic_ai needs pydantic-ai: pip install 'agentmw[pydantic-ai]'"
    ) from exc

from agentmw._validate import check_choice, check_optional_name
from agentmw.core.agent import Agent
from agentmw.core.context import CURRENT_SESSION
from agentmw.core.decorators import build_wrapper
from agentmw.core.session.lifecycle import AgentState
from agentmw.integrations._toolcalls import is_refusal, refusal_text
from agentmw.usage import Usage

__all__ = ["AgentMW", "AgentMWModel", "usage_from_pydantic_ai"]

OnRefusal = Literal["message", "raise"]
_ON_REFUSAL = ("message", "raise")


def usage_from_pydantic_ai(usage: RequestUsage) -> Usage:
    """One request's `RequestUsage` as a `Usage` (input includes cache reads and writes).

    pydantic-ai counts cache reads and writes inside `input_tokens` and reasoning inside
    `output_tokens`, as agentmw does, so the fields map one to one.
    """
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.output_reasoning_tokens,
    )


# -- what the layers see of a request: its text slots, and the reply's text -------------------
Slot = dict[str, Any]
_TEXT_PARTS = (SystemPromptPart, UserPromptPart, ToolReturnPart, RetryPromptPart)


class _Conversation:
    """pydantic-ai's messages as the layers see them: opaque (Guardrails read the text slots
    beside them; a Checkpoint fingerprint names this type only, since pydantic-ai stamps every
    message with the time)."""

    __slots__ = ("messages", "slots")

    def __init__(self, messages: list[ModelMessage]) -> None:
        self.messages = messages
        self.slots = _text_slots(messages)


def _text_slots(messages: list[ModelMessage]) -> list[Slot]:
    """One `{"type": "text", "text": ...}` slot per string a request part sends, in order.

    System prompts, user prompts (and the strings of a multi-part prompt), tool returns and
    retry prompts; `at` says where the string lives (message, part[, item]).
    """
    slots: list[Slot] = []
    for m, message in enumerate(messages):
        if not isinstance(message, ModelRequest):
            continue
        for p, part in enumerate(message.parts):
            if not isinstance(part, _TEXT_PARTS):
                continue
            content = part.content
            if isinstance(content, str):
                slots.append({"type": "text", "text": content, "at": (m, p)})
            elif isinstance(part, UserPromptPart) and isinstance(content, (list, tuple)):
                for i, item in enumerate(content):
                    if isinstance(item, str):
                        slots.append({"type": "text", "text": item, "at": (m, p, i)})
    return slots


def _with_slots(conversation: _Conversation, slots: list[Slot]) -> list[ModelMessage]:
    """The messages with the slots' text written back (copies only where a layer changed it)."""
    messages = conversation.messages
    if slots is conversation.slots:
        return messages
    out = list(messages)
    for old, new in zip(conversation.slots, slots, strict=True):
        if new["text"] == old["text"]:
            continue
        m, p, *item = old["at"]
        request = out[m]
        assert isinstance(request, ModelRequest)
        parts = list(request.parts)
        part: Any = parts[p]
        if item:
            content = list(part.content)
            content[item[0]] = new["text"]
            parts[p] = dataclasses.replace(part, content=content)
        else:
            parts[p] = dataclasses.replace(part, content=new["text"])
        out[m] = dataclasses.replace(request, parts=parts)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class _Reply:
    """A model response as the layers see it: the response and its text (Guardrails may
    replace the text; `AgentMWModel` writes it back into the response's text parts)."""

    response: ModelResponse
    text: str | None


def _reply_usage(result: Any) -> Usage | None:
    return usage_from_pydantic_ai(result.response.usage) if isinstance(result, _Reply) else None


def _unwrap(reply: _Reply) -> ModelResponse:
    """The response with the reply's text: all of it in the first text part, the rest emptied."""
    response = reply.response
    if reply.text is None or reply.text == response.text:
        return response
    remaining = [reply.text]
    parts = [
        dataclasses.replace(part, content=remaining.pop() if remaining else "")
        if isinstance(part, TextPart)
        else part
        for part in response.parts
    ]
    return dataclasses.replace(response, parts=parts)


class _Settled:
    """The last chunk of a streamed turn: the usage and text pydantic-ai read from the stream."""

    __slots__ = ("text", "usage")

    def __init__(self, usage: Usage, text: str | None) -> None:
        self.usage = usage
        self.text = text


def _stream_usage(chunk: Any) -> Usage | None:
    return chunk.usage if type(chunk) is _Settled else None


def _serving(served: Model, model: str) -> Model:
    """The model to send to: `served`, or the one a layer switched to (Fallback, Policy)."""
    if model == served.model_name:
        return served
    return infer_model(model)


async def _request(
    served: Model,
    conversation: _Conversation,
    texts: list[Slot],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
    *,
    model: str,
) -> _Reply:
    """The turn of one model request (called again by Retry; `model` may be switched)."""
    messages = _with_slots(conversation, texts)
    response = await _serving(served, model).request(messages, settings, params)
    return _Reply(response, response.text)


class _Handoff:
    """Hands a streamed response from the turn (a task) to pydantic-ai, and its end back.

    The turn opens the stream and waits in `read` while pydantic-ai consumes it; `finish` (or
    `fail`) says pydantic-ai is done, so the turn reads the usage and ends.
    """

    __slots__ = ("delivered", "read", "text")

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.delivered: asyncio.Future[StreamedResponse] = loop.create_future()
        self.read: asyncio.Future[None] = loop.create_future()
        self.text: str | None = None

    def finish(self, exc: BaseException | None = None) -> None:
        if self.read.done():
            return
        if exc is None:
            self.read.set_result(None)
        elif isinstance(exc, asyncio.CancelledError):
            self.read.cancel()
        else:
            self.read.set_exception(exc)


async def _request_stream(
    served: Model,
    conversation: _Conversation,
    texts: list[Slot],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
    run_context: RunContext[Any] | None,
    handoff: _Handoff,
    *,
    model: str,
) -> AsyncIterator[Any]:
    """The turn of one streamed request: yields pydantic-ai's `StreamedResponse`, then usage.

    The response goes to pydantic-ai through `handoff` as soon as the stream opens (a layer
    such as Guardrails may hold the chunk back; pydantic-ai's events never pass the stack);
    the turn then waits until pydantic-ai has read it, and its last chunk carries the usage
    the response accumulated.
    """
    if handoff.delivered.done():
        # A layer outside the one holding the chunk back (Retry outside Guardrails) resends a
        # stream pydantic-ai has been reading: it cannot be sent twice.
        raise RuntimeError(
            "pydantic-ai has read this streamed response already; it cannot be resent "
            "(keep Retry inside Guardrails, the canonical order)"
        )
    target = _serving(served, model)
    messages = _with_slots(conversation, texts)
    async with target.request_stream(messages, settings, params, run_context) as response:
        handoff.delivered.set_result(response)
        yield response
        await handoff.read
        handoff.text = response.get().text
        yield _Settled(usage_from_pydantic_ai(response.usage), handoff.text)


async def _drain(chunks: AsyncIterator[Any], handoff: _Handoff) -> None:
    async for chunk in chunks:
        if type(chunk) is _Settled and chunk.text != handoff.text:
            _warn_late_replacement()


_late_warned = threading.Event()


def _warn_late_replacement() -> None:
    # pydantic-ai has already read the stream: a replacement cannot reach it. Said once.
    if _late_warned.is_set():
        return
    _late_warned.set()
    warnings.warn(
        "a Guardrails layer replaced the text of a streamed pydantic-ai response after "
        "pydantic-ai had read it: the replacement is lost. Use run()/run_sync() (not "
        "run_stream) where output text must be redacted; blocking guards still end the run.",
        RuntimeWarning,
        stacklevel=2,
    )


class _Turns:
    """The turn wrappers (one per provider and path), built once and shared."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    def get(self, provider: str, stream: bool) -> Any:
        built = self._built.get((provider, stream))
        if built is not None:
            return built
        fn: Callable[..., Any] = _request_stream if stream else _request
        name = "request_stream" if stream else "request"
        usage = _stream_usage if stream else _reply_usage
        # A streamed request yields pydantic-ai's live StreamedResponse: never checkpointed.
        wrapper = build_wrapper(
            fn, "turn", name, None, None, usage, provider=provider, live_stream=stream
        )
        with self._lock:
            return self._built.setdefault((provider, stream), wrapper)


_TURNS = _Turns()


class AgentMWModel(WrapperModel):
    """A `WrapperModel` whose requests are agentmw turns (`AgentMW` wraps each serving model).

    `request` and `request_stream` run through the current session's stack (else the process
    default stack) with `call.model` the wrapped model's `model_name` and `call.provider` its
    `system`. A turn's usage is the response's `RequestUsage`; a streamed turn's is read when
    pydantic-ai has consumed the stream (see the docs page). A layer that switches the model
    (Fallback, Policy) makes the request on `pydantic_ai.models.infer_model(new_name)`.
    """

    def __init__(self, wrapped: Model | str) -> None:
        super().__init__(wrapped)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        served = self.wrapped
        turn = _TURNS.get(served.system, False)
        conversation = _Conversation(messages)
        reply: _Reply = await turn(
            served,
            conversation,
            conversation.slots,
            model_settings,
            model_request_parameters,
            model=served.model_name,
        )
        return _unwrap(reply)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        served = self.wrapped
        turn = _TURNS.get(served.system, True)
        handoff = _Handoff()
        conversation = _Conversation(messages)
        chunks = turn(
            served,
            conversation,
            conversation.slots,
            model_settings,
            model_request_parameters,
            run_context,
            handoff,
            model=served.model_name,
        )
        # The turn runs in its own task (a copy of this context: the session, the span), so it
        # can stay open while pydantic-ai reads the response in this one.
        task = asyncio.ensure_future(_drain(chunks, handoff))
        try:
            await asyncio.wait((handoff.delivered, task), return_when=asyncio.FIRST_COMPLETED)
            if not handoff.delivered.done():
                await task  # the turn failed (or was refused) before the stream opened
                raise RuntimeError(
                    "a layer answered a streamed pydantic-ai request without opening the "
                    "stream: pydantic-ai needs the live StreamedResponse"
                )
            response = handoff.delivered.result()
            try:
                yield response
            except BaseException as exc:
                handoff.finish(exc)  # the turn fails with pydantic-ai's error
                await asyncio.gather(task, return_exceptions=True)
                raise
            handoff.finish()
            await task
        finally:
            if not task.done():
                handoff.finish(asyncio.CancelledError())
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            elif not task.cancelled():
                task.exception()  # retrieved: the error already propagated from here


class AgentMW(AbstractCapability[Any]):
    """A pydantic-ai capability that runs an agent run through an agentmw stack.

    Each model request attempt is a turn (`AgentMWModel`), each tool execution a tool call
    (permissions, guardrails on arguments and results, limits, checkpoints; the tool call id
    in `Call.tool_call_id`), and the run happens inside an agentmw session.

    Args:
        agent: the agentmw `Agent` whose stack and session a run uses when no session is open.
        thread_id: the `thread_id` of the session opened per run (Checkpoint replays on it).
        on_refusal: "message" (default): a tool refused by Permissions, Guardrails, Limits or a
            denying Policy rule becomes a `ToolFailed` the model reads (no tool retry is
            spent); "raise": the agentmw error ends the run. Budget, circuit-open and other
            refusals always end the run.

    Raises:
        TypeError: `agent` is not an agentmw `Agent`, or `thread_id` is not a string.
        ValueError: `on_refusal` is neither "message" nor "raise", or `thread_id` is blank.
    """

    def __init__(
        self,
        agent: Agent,
        *,
        thread_id: str | None = None,
        on_refusal: OnRefusal = "message",
    ) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"agent must be an agentmw Agent, got {type(agent).__name__}")
        self.agent = agent
        self.thread_id = check_optional_name("thread_id", thread_id)
        check_choice("on_refusal", on_refusal, _ON_REFUSAL)
        self.on_refusal: OnRefusal = on_refusal

    def __repr__(self) -> str:
        return f"AgentMW(agent={self.agent!r}, on_refusal={self.on_refusal!r})"

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # holds a live Agent: not buildable from a spec

    async def wrap_run(self, ctx: RunContext[Any], *, handler: Any) -> Any:
        current = CURRENT_SESSION.get()
        if current is not None and current.state is AgentState.RUNNING:
            return await handler()
        async with self.agent.session(self.thread_id):
            return await handler()

    def get_wrapper_model(self, model: Model) -> Model | None:
        return None if isinstance(model, AgentMWModel) else AgentMWModel(model)

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: dict[str, Any],
        handler: Any,
    ) -> Any:
        session = CURRENT_SESSION.get()
        if session is None:  # pragma: no cover - wrap_run always opens one first
            return await handler(args)

        async def tool(arguments: dict[str, Any]) -> Any:
            return await handler(arguments)

        try:
            return await session.arun_tool(
                call.tool_name, tool, args, tool_call_id=call.tool_call_id or None
            )
        except Exception as exc:
            if self.on_refusal == "raise" or not is_refusal(exc):
                raise
            raise ToolFailed(refusal_text(exc)) from exc
