"""The calls `AgentMWMiddleware` runs: a model request as a turn, a tool request as a tool.

What the stack sees of each (`ModelOutput`, `ToolOutput`, the message view input guards read
and Checkpoint fingerprints) and how the LangChain result is rebuilt from it, live or replayed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware import ModelRequest
from langchain.agents.middleware.types import ExtendedModelResponse, ModelResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
)
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from agentmw.usage import Usage

__all__ = ["ModelOutput", "ToolOutput", "usage_from_message"]  # re-exported by the package


def usage_from_message(message: Any) -> Usage:
    """The `Usage` of an `AIMessage` from its `usage_metadata` (zero when it has none).

    `input_tokens` is LangChain's whole input (cache reads and writes included, as agentmw
    counts it); `input_token_details.cache_read` / `cache_creation` are the cache reads and
    writes; `output_token_details.reasoning` the reasoning part of `output_tokens`.
    """
    meta = getattr(message, "usage_metadata", None)
    if not meta:
        return Usage()
    inp = meta.get("input_token_details") or {}
    out = meta.get("output_token_details") or {}
    return Usage(
        input_tokens=int(meta.get("input_tokens") or 0),
        output_tokens=int(meta.get("output_tokens") or 0),
        cache_read_tokens=int(inp.get("cache_read") or 0),
        cache_write_tokens=int(inp.get("cache_creation") or 0),
        reasoning_tokens=int(out.get("reasoning") or 0),
    )


def _model_name(model: Any) -> str:
    """The model name a chat model reports (`model_name`, `model`, `model_id`), else its type."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value.strip():
            return value
    return type(model).__name__


# -- the results the stack sees (Guardrails read `text` / `content`; Checkpoint stores them) ----
@dataclass(slots=True)
class ModelOutput:
    """A model call's result as the stack sees it (and Checkpoint stores it).

    Attributes:
        text: the reply's text (`AIMessage.text`); output guards check and may replace it.
        messages: the response's messages (`messages_to_dict`); a string reply's content is
            carried by `text` only, so a redacted reply is stored redacted.
        structured: the structured response as JSON, when the agent has a `response_format`.
    """

    text: str
    messages: list[dict[str, Any]]
    structured: Any = None


@dataclass(slots=True)
class ToolOutput:
    """A tool call's result as the stack sees it (and Checkpoint stores it).

    Attributes:
        text: the `ToolMessage` content when it is a string (output guards check it).
        content: the content when it is a list of blocks, else None.
        status: the `ToolMessage` status ("success" or "error").
        command: True when the tool returned a LangGraph `Command` (not replayable).
    """

    text: str = ""
    content: list[Any] | None = None
    status: str = "success"
    command: bool = False


def message_view(request: ModelRequest[Any]) -> list[dict[str, Any]]:
    """The request's messages as the stack sees them: role, content, tool calls; no ids.

    Message ids are random per run, so they stay out: the view is what Checkpoint fingerprints
    and what input guards read.
    """
    messages: list[BaseMessage] = list(request.messages)
    if request.system_message is not None:
        messages.insert(0, request.system_message)
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.type, "content": m.content}
        if isinstance(m, AIMessage) and m.tool_calls:
            item["tool_calls"] = [
                {"name": c["name"], "args": c["args"], "id": c.get("id")} for c in m.tool_calls
            ]
        if isinstance(m, ToolMessage):
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


def _with_view(request: ModelRequest[Any], view: list[dict[str, Any]]) -> ModelRequest[Any]:
    """`request` with the contents an input guard replaced in `view` (the request otherwise)."""
    system = request.system_message
    messages = list(request.messages)
    originals: list[BaseMessage] = [system] if system is not None else []
    originals.extend(messages)
    changed = False
    rebuilt: list[BaseMessage] = []
    for message, item in zip(originals, view, strict=True):
        content = item.get("content")
        if content is not message.content and content != message.content:
            message = message.model_copy(update={"content": content})
            changed = True
        rebuilt.append(message)
    if not changed:
        return request
    if system is not None:
        return request.override(system_message=rebuilt[0], messages=rebuilt[1:])  # type: ignore[arg-type]
    return request.override(messages=rebuilt)  # type: ignore[arg-type]


def _model_response(result: Any) -> tuple[ModelResponse[Any], Any]:
    """(the `ModelResponse`, the command of an `ExtendedModelResponse` or None)."""
    if isinstance(result, ExtendedModelResponse):
        return result.model_response, result.command
    if isinstance(result, AIMessage):
        return ModelResponse(result=[result]), None
    return result, None


def _last_ai(messages: list[BaseMessage]) -> AIMessage | None:
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            return m
    return None


def _output_of(response: ModelResponse[Any]) -> ModelOutput:
    ai = _last_ai(response.result)
    text = ai.text if ai is not None else ""
    dicts = messages_to_dict(response.result)
    for d, m in zip(dicts, response.result, strict=True):
        if m is ai and isinstance(m.content, str):
            d["data"]["content"] = ""  # carried by `text`
    structured = response.structured_response
    if structured is not None:
        from pydantic_core import to_jsonable_python

        structured = to_jsonable_python(structured, fallback=lambda o: type(o).__name__)
    return ModelOutput(text, dicts, structured)


def _with_text(messages: list[BaseMessage], text: str) -> list[BaseMessage]:
    """The messages with the last AI message's text set to `text` (a replaced reply)."""
    ai = _last_ai(messages)
    if ai is None or ai.text == text:
        return messages
    return [m.model_copy(update={"content": text}) if m is ai else m for m in messages]


class Turn:
    """One model call: the function the stack runs, and what it saw live."""

    __slots__ = ("handler", "live", "models", "name", "request")

    def __init__(
        self, request: ModelRequest[Any], handler: Any, models: Mapping[str, BaseChatModel]
    ) -> None:
        self.request = request
        self.handler = handler
        self.models = models
        self.name = _model_name(request.model)
        self.live: tuple[ModelResponse[Any], Any] | None = None

    def _prepared(self, messages: list[dict[str, Any]], model: str | None) -> ModelRequest[Any]:
        request = _with_view(self.request, messages)
        if model is not None and model != self.name:
            # Fallback or Policy switched the model: run it on the chat model of that name.
            chat = self.models.get(model)
            if chat is None:
                raise ValueError(
                    f"the stack switched the model to {model!r}, which is not in "
                    f"AgentMWMiddleware(models=...) (known: {sorted(self.models)})"
                )
            request = request.override(model=chat)
        return request

    # The functions the stack runs. Both are named `chat_model` (the turn's name), so a thread
    # recorded by a sync run replays under an async one and the other way round.
    def sync(self) -> Callable[..., ModelOutput]:
        def chat_model(messages: list[dict[str, Any]], model: str | None = None) -> ModelOutput:
            self.live = _model_response(self.handler(self._prepared(messages, model)))
            return _output_of(self.live[0])

        return chat_model

    def async_(self) -> Callable[..., Awaitable[ModelOutput]]:
        async def chat_model(
            messages: list[dict[str, Any]], model: str | None = None
        ) -> ModelOutput:
            self.live = _model_response(await self.handler(self._prepared(messages, model)))
            return _output_of(self.live[0])

        return chat_model

    def usage(self, output: ModelOutput) -> Usage:
        assert self.live is not None
        total = Usage()
        for m in self.live[0].result:
            if isinstance(m, AIMessage):
                total = total + usage_from_message(m)
        return total

    def result(self, output: ModelOutput) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        if self.live is None:  # replayed by Checkpoint: rebuilt from the stored record
            messages = messages_from_dict(output.messages)
            ai = _last_ai(messages)
            if ai is not None and ai.content == "":
                messages = [
                    m.model_copy(update={"content": output.text}) if m is ai else m
                    for m in messages
                ]
            return ModelResponse(result=messages, structured_response=output.structured)
        response, command = self.live
        messages = _with_text(list(response.result), output.text)
        if messages is not response.result:
            response = ModelResponse(messages, response.structured_response)
        if command is not None:
            return ExtendedModelResponse(response, command)
        return response


class ToolRun:
    """One tool call: the function the stack runs, and what it returned live."""

    __slots__ = ("handler", "live", "request")

    def __init__(self, request: ToolCallRequest, handler: Any) -> None:
        self.request = request
        self.handler = handler
        self.live: ToolMessage | Command[Any] | None = None

    def _prepared(self, args: dict[str, Any]) -> ToolCallRequest:
        call = self.request.tool_call
        if args == call["args"]:
            return self.request
        return self.request.override(tool_call={**call, "args": args})

    def _output(self, result: ToolMessage | Command[Any]) -> ToolOutput:
        self.live = result
        if isinstance(result, ToolMessage):
            if isinstance(result.content, str):
                return ToolOutput(text=result.content, status=result.status)
            return ToolOutput(content=list(result.content), status=result.status)
        return ToolOutput(command=True)

    def run(self, args: dict[str, Any]) -> ToolOutput:
        return self._output(self.handler(self._prepared(args)))

    async def arun(self, args: dict[str, Any]) -> ToolOutput:
        return self._output(await self.handler(self._prepared(args)))

    def result(self, output: ToolOutput) -> ToolMessage | Command[Any]:
        call = self.request.tool_call
        content: Any = output.text if output.content is None else output.content
        live = self.live
        if live is None:  # replayed by Checkpoint
            if output.command:
                raise TypeError(
                    f"tool {call['name']!r} returned a langgraph Command, which a Checkpoint "
                    "cannot replay; give this tool Checkpoint(kinds='turn') or return a string"
                )
            return ToolMessage(
                content=content, name=call["name"], tool_call_id=call["id"], status=output.status
            )
        if isinstance(live, ToolMessage) and content != live.content:
            return live.model_copy(update={"content": content})
        return live
