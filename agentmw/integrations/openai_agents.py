"""OpenAI Agents SDK: each model call of a run as a turn, each function tool call as a tool.

`AgentMWModelProvider(inner)` is an `agents.models.interface.ModelProvider` (pass it as
`RunConfig(model_provider=...)`): the models it returns run `get_response` and
`stream_response` through the stack as turns. `wrap_tools(tools)` / `wrap_tool(tool)` return
copies of `FunctionTool`s whose invocations run through the stack as tool calls. Both run in
the current agentmw session: open one around the run (`async with agent.session(): await
Runner.run(...)`, or `with` around `Runner.run_sync`); outside a session the calls run on the
stack without a session ledger, as `instrument(client)` does. Needs `pip install
'agentmw[openai-agents]'`.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter

try:
    from agents.agent_output import AgentOutputSchemaBase
    from agents.handoffs import Handoff
    from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem
    from agents.model_settings import ModelSettings
    from agents.models.interface import Model, ModelProvider, ModelTracing
    from agents.tool import FunctionTool, Tool
    from agents.usage import Usage as SDKUsage
    from openai.types.responses.response_prompt_param import ResponsePromptParam
except ImportError as exc:  # pragma: no cover - the packaging test blocks the import instead
    raise ImportError(
        "agentmw.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'agentmw[openai-agents]'"
    ) from exc

from agentmw._validate import check_choice, check_instance
from agentmw.core.middleware import aclose
from agentmw.core.stack import Stack
from agentmw.integrations._echoes import ResponseEchoes
from agentmw.integrations._toolcalls import (
    ON_REFUSAL,
    REFUSALS,
    arun,
    astream,
    is_refusal,
    refusal_text,
    start,
)
from agentmw.integrations._wrap import check_stack
from agentmw.usage import Usage

__all__ = [
    "AgentMWModel",
    "AgentMWModelProvider",
    "ModelOutput",
    "usage_from_sdk",
    "wrap_tool",
    "wrap_tools",
]

T = TypeVar("T")
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def usage_from_sdk(usage: Any) -> Usage:
    """The `Usage` of an Agents SDK `Usage` (or a Responses `ResponseUsage`).

    `input_tokens` is the whole input (cached tokens included, as agentmw counts it);
    `input_tokens_details.cached_tokens` / `cache_write_tokens` are the cache reads and writes;
    `output_tokens_details.reasoning_tokens` the reasoning part of `output_tokens`.
    """
    if usage is None:
        return Usage()
    idetails = getattr(usage, "input_tokens_details", None)
    odetails = getattr(usage, "output_tokens_details", None)

    def count(obj: Any, name: str) -> int:
        value = getattr(obj, name, 0) if obj is not None else 0
        return value if type(value) is int and value > 0 else 0

    return Usage(
        input_tokens=count(usage, "input_tokens"),
        output_tokens=count(usage, "output_tokens"),
        cache_read_tokens=count(idetails, "cached_tokens"),
        cache_write_tokens=count(idetails, "cache_write_tokens"),
        reasoning_tokens=count(odetails, "reasoning_tokens"),
    )


@functools.cache
def _items() -> TypeAdapter[list[TResponseOutputItem]]:
    return TypeAdapter(list[TResponseOutputItem])


@dataclass
class ModelOutput:
    """What the stack sees of a non-streamed model response (a Responses-shaped result).

    Guardrails read and may redact the text of its `output` message items; Checkpoint stores
    and replays it; the adapter turns it back into the SDK's `ModelResponse`. The items are
    kept as the dicts of the fields the model set (`model_dump(exclude_unset=True)`), so a
    replayed response builds the same next input as the live one (and the same fingerprint).
    """

    output: list[dict[str, Any]]
    usage: SDKUsage
    response_id: str | None = None
    request_id: str | None = None
    raw_usage: dict[str, Any] | None = None
    object: str = "response"

    def to_model_response(self) -> ModelResponse:
        return ModelResponse(
            output=_items().validate_python(self.output),
            usage=self.usage,
            response_id=self.response_id,
            request_id=self.request_id,
            raw_usage=self.raw_usage,
        )


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dumped: dict[str, Any] = item.model_dump(mode="json", exclude_unset=True)
    return dumped


def _usage_of(result: Any) -> Usage | None:
    return usage_from_sdk(result.usage) if isinstance(result, ModelOutput) else None


def _stream_usage(event: Any) -> Usage | None:
    """A stream's usage: the final response event's (`response.completed`)."""
    if getattr(event, "type", None) not in _FINAL_EVENTS:
        return None
    return usage_from_sdk(getattr(getattr(event, "response", None), "usage", None))


def _provider_of(model: Any) -> str | None:
    return "openai" if type(model).__module__.startswith("agents.models.openai") else None


def _name_of(model: Any, name: str | None) -> str | None:
    if name:
        return name
    found = getattr(model, "model", None)
    return found if isinstance(found, str) and found else None


class AgentMWModel(Model):
    """An Agents SDK `Model` whose calls run as agentmw turns (the inner model does the work).

    `AgentMWModelProvider` returns these; use one directly when an agent's `model` is a
    `Model` object (the SDK then never asks the run's provider):
    `Agent(model=AgentMWModel(my_model, model="gpt-4.1"))`.

    Each `get_response` is a turn named `agents.get_response`, each `stream_response` a
    streamed turn named `agents.stream_response`, with `call.model` the model name; the
    layers see `(system_instructions, input)` as the call's arguments. Usage is the
    response's `Usage` (streamed: the final `response.completed` event's). A model switch by
    Fallback or Policy asks the provider (when there is one) for the new model.

    Args:
        inner: the SDK model to call.
        model: the model name the layers see (pricing, breakers, fallback); default: the
            inner model's `model` attribute.
        stack: a fixed stack; default: the current session's stack, else the process default.
        provider: the provider to resolve a switched model name with (set by
            `AgentMWModelProvider`).

    Raises:
        TypeError: `inner` is no `Model`, or `stack` is neither a `Stack` nor None.
    """

    def __init__(
        self,
        inner: Model,
        *,
        model: str | None = None,
        stack: Stack | None = None,
        provider: ModelProvider | None = None,
    ) -> None:
        self.inner = check_instance("inner", inner, Model, "an agents Model")
        self.model = _name_of(inner, model)
        self.stack = check_stack(stack)
        self._provider = provider
        self._models: dict[str, Model] = {}

    def _resolve(self, name: str | None) -> Model:
        """The SDK model to call for `name` (a switched model comes from the provider)."""
        if name is None or name == self.model or self._provider is None:
            return self.inner
        found = self._models.get(name)
        if found is None:
            found = self._models.setdefault(name, self._provider.get_model(name))
        return found

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        async def respond(
            system_instructions: str | None, input: Any, *, model: str | None, **_: Any
        ) -> ModelOutput:
            response = await self._resolve(model).get_response(
                system_instructions,
                input,
                model_settings,
                tools,
                output_schema,
                handoffs,
                tracing,
                previous_response_id=previous_response_id,
                conversation_id=conversation_id,
                prompt=prompt,
            )
            return ModelOutput(
                [_as_dict(item) for item in response.output],
                response.usage,
                response.response_id,
                response.request_id,
                response.raw_usage,
            )

        respond.__annotations__ = {"return": ModelOutput}  # Checkpoint reads results back as it
        call, chain = start(
            "turn",
            "agents.get_response",
            respond,
            (system_instructions, input),
            _request_kwargs(self.model, model_settings),
            self.stack,
            "async",
            model=self.model,
            provider=_provider_of(self.inner),
            usage_fn=_usage_of,
        )
        output: ModelOutput = await arun(call, chain)
        return output.to_model_response()

    async def stream_response(  # an async generator, as the SDK's own implementations are
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[Any]:
        async def produce(
            system_instructions: str | None, input: Any, *, model: str | None, **_: Any
        ) -> AsyncIterator[Any]:
            events = self._resolve(model).stream_response(
                system_instructions,
                input,
                model_settings,
                tools,
                output_schema,
                handoffs,
                tracing,
                previous_response_id=previous_response_id,
                conversation_id=conversation_id,
                prompt=prompt,
            )
            try:
                async for event in events:
                    yield event
            finally:
                await aclose(events)

        call, chain = start(
            "turn",
            "agents.stream_response",
            produce,
            (system_instructions, input),
            _request_kwargs(self.model, model_settings),
            self.stack,
            "astream",
            model=self.model,
            provider=_provider_of(self.inner),
            usage_fn=_stream_usage,
        )
        # Guardrails rewrite the text deltas; the repeats after them (`.done` events and the
        # final `response.completed`, from which the SDK builds its ModelResponse) follow.
        fix = ResponseEchoes()
        agen = astream(call, chain)
        try:
            async for event in agen:
                yield fix(event)
        finally:
            await aclose(agen)

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        await self.inner.close()

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.inner._cleanup_on_run_end(owner)

    def __repr__(self) -> str:
        return f"AgentMWModel({self.inner!r}, model={self.model!r})"


def _request_kwargs(model: str | None, settings: ModelSettings) -> dict[str, Any]:
    """The call's keyword arguments: the model (a switch rewrites it) and the output cap."""
    kwargs: dict[str, Any] = {"model": model}
    max_tokens = getattr(settings, "max_tokens", None)
    if type(max_tokens) is int and max_tokens > 0:
        kwargs["max_tokens"] = max_tokens  # the estimate's output side (Budget, RateLimit)
    return kwargs


class AgentMWModelProvider(ModelProvider):
    """A `ModelProvider` whose models run as agentmw turns; `inner` resolves the names.

    Pass it as `RunConfig(model_provider=AgentMWModelProvider(MultiProvider()))`. Every model
    the run asks for by name (the agent's `model` string, or `RunConfig.model`) comes back as
    an `AgentMWModel` around `inner.get_model(name)`. An agent whose `model` is a `Model`
    object is not asked for by name: wrap it in `AgentMWModel` yourself.

    Args:
        inner: the provider that builds the SDK models (`MultiProvider`, `OpenAIProvider`...).
        stack: a fixed stack; default: the current session's stack, else the process default.

    Raises:
        TypeError: `inner` is no `ModelProvider`, or `stack` is neither a `Stack` nor None.
    """

    def __init__(self, inner: ModelProvider, *, stack: Stack | None = None) -> None:
        self.inner = check_instance("inner", inner, ModelProvider, "an agents ModelProvider")
        self.stack = check_stack(stack)

    def get_model(self, model_name: str | None) -> Model:
        model = self.inner.get_model(model_name)
        if isinstance(model, AgentMWModel):
            return model
        return AgentMWModel(model, model=model_name, stack=self.stack, provider=self.inner)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"AgentMWModelProvider({self.inner!r})"


def _arguments(text: str) -> Any:
    """A tool call's arguments as the layers see them: the parsed JSON object, else the text."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def wrap_tool(
    tool: FunctionTool, *, stack: Stack | None = None, on_refusal: str = "message"
) -> FunctionTool:
    """A copy of `tool` whose invocations run through the stack as tool calls.

    The call's name is the tool's `name` (permissions match on it), its argument the parsed
    JSON arguments object (guardrails check and may rewrite its string values; Checkpoint
    fingerprints it), its `tool_call_id` the SDK's `ToolContext.tool_call_id`. A call refused
    by Permissions, Guardrails, Limits or Policy returns a message the model reads
    (`agentmw refused this tool call: ...`) unless `on_refusal="raise"`; any other agentmw
    error (`BudgetExceededError`, `CircuitOpenError`...) ends the run.

    Raises:
        TypeError: `tool` is no `FunctionTool`, or `stack` is neither a `Stack` nor None.
        ValueError: `on_refusal` is neither "message" nor "raise".
    """
    check_instance("tool", tool, FunctionTool, "an agents FunctionTool")
    fixed = check_stack(stack)
    raising = check_choice("on_refusal", on_refusal, ON_REFUSAL) == "raise"
    original = tool.on_invoke_tool
    name = tool.name

    async def invoke(ctx: Any, input: str) -> Any:
        parsed = _arguments(input)

        async def run(arguments: Any) -> Any:
            # The SDK's own text unless a guardrail replaced a value (then re-serialized).
            if isinstance(arguments, str):
                return await original(ctx, arguments)
            same = arguments is parsed or arguments == parsed
            return await original(ctx, input if same else json.dumps(arguments))

        call, chain = start(
            "tool",
            name,
            run,
            (parsed,),
            {},
            fixed,
            "async",
            tool_call_id=getattr(ctx, "tool_call_id", None) or None,
        )
        try:
            return await arun(call, chain)
        except REFUSALS as exc:
            if raising or not is_refusal(exc):
                raise
            return refusal_text(exc)

    wrapped = copy.copy(tool)
    wrapped.on_invoke_tool = invoke
    return wrapped


def wrap_tools(
    tools: Iterable[T], *, stack: Stack | None = None, on_refusal: str = "message"
) -> list[T]:
    """`tools` with every `FunctionTool` wrapped by `wrap_tool`; other tools as they are.

    Hosted tools (web search, file search, code interpreter...) run on the provider's side and
    reach agentmw only as part of the turn; local non-function tools (computer, shell,
    apply-patch) are not wrapped (see the docs page).
    """
    check_choice("on_refusal", on_refusal, ON_REFUSAL)
    wrapped: list[Any] = [
        wrap_tool(t, stack=stack, on_refusal=on_refusal) if isinstance(t, FunctionTool) else t
        for t in tools
    ]
    return wrapped
