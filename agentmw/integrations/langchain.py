"""LangChain v1: `AgentMWMiddleware(agent)` runs a `create_agent` agent through an agentmw stack.

Each model call is a turn, each tool call a tool, and each agent run one session of `agent`
(its `thread_id` is the LangGraph thread id of the run's config). Needs LangChain v1
(`pip install 'agentmw[langchain]'`); `import agentmw` never imports this module.
See `docs/integrations/langchain.md` for what each layer sees and what is not covered.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
    from langchain.agents.middleware.types import (
        ExtendedModelResponse,
        ModelResponse,
        PrivateStateAttr,
    )
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        ToolMessage,
        messages_from_dict,
        messages_to_dict,
    )
    from langgraph.config import get_config
    from langgraph.errors import GraphBubbleUp
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.runtime import Runtime
    from langgraph.types import Command
except ImportError as exc:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        "agentmw.integrations.langchain needs LangChain v1 (langchain>=1.0, langgraph): "
        "pip install 'agentmw[langchain]'"
    ) from exc

from agentmw._validate import check_choice, check_instance, check_optional_name
from agentmw.core.agent import Agent
from agentmw.core.context import CURRENT_SESSION
from agentmw.core.session.session import Session
from agentmw.errors import (
    ApprovalRequiredError,
    GuardrailViolation,
    LimitExceededError,
    PermissionDeniedError,
    PolicyViolationError,
)
from agentmw.usage import Usage

__all__ = ["REFUSALS", "AgentMWMiddleware", "ModelOutput", "ToolOutput", "usage_from_message"]

# The refusals of a tool call that become a `ToolMessage` the model reads (on_refusal="message").
# Everything else (budget, circuit open, rate limit, replay divergence...) ends the run.
REFUSALS: tuple[type[Exception], ...] = (
    PermissionDeniedError,
    GuardrailViolation,
    LimitExceededError,
    PolicyViolationError,
    ApprovalRequiredError,
)
_KEY = "agentmw_session"


class _State(AgentState[Any]):
    """The agent state this middleware adds: the key of the run's session (private)."""

    agentmw_session: NotRequired[Annotated[str | None, PrivateStateAttr]]


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


def _thread_id(runtime: Any) -> str | None:
    """The LangGraph thread id of the running graph (config first, then the runtime)."""
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # outside a runnable context
        configurable = {}
    thread = configurable.get("thread_id")
    if thread is None:
        info = getattr(runtime, "execution_info", None)
        thread = getattr(info, "thread_id", None)
    return None if thread is None else str(thread)


def _refusal_text(exc: Exception) -> str:
    """What the model reads about a refused tool call: the refusal's type and reason.

    Built from the error's structured fields (pattern, guard, limit, rule names), never from
    the tool's arguments or output, so nothing the guards caught is echoed back.
    """
    kind = type(exc).__name__
    if isinstance(exc, PermissionDeniedError):
        why = exc.reason
    elif isinstance(exc, GuardrailViolation):
        stage = "arguments" if exc.stage == "input" else "result"
        why = f"{stage} blocked by " + ", ".join(f"{g} ({r})" for g, r in exc.violations)
    elif isinstance(exc, LimitExceededError):
        why = f"{exc.limit} reached (limit {exc.ceiling})"
    elif isinstance(exc, PolicyViolationError):
        why = f"policy rule {exc.rule!r} ({exc.action}): {exc.reason}"
    elif isinstance(exc, ApprovalRequiredError):
        why = f"policy rule {exc.rule!r} requires approval"
    else:  # pragma: no cover - REFUSALS lists the types above
        why = "refused"
    return f"agentmw refused this tool call: {kind}: {why}"


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


def _view(request: ModelRequest[Any]) -> list[dict[str, Any]]:
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
    originals: list[BaseMessage] = ([system] if system is not None else []) + messages
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


class _Turn:
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

    def run(self, messages: list[dict[str, Any]], model: str | None = None) -> ModelOutput:
        self.live = _model_response(self.handler(self._prepared(messages, model)))
        return _output_of(self.live[0])

    async def arun(self, messages: list[dict[str, Any]], model: str | None = None) -> ModelOutput:
        self.live = _model_response(await self.handler(self._prepared(messages, model)))
        return _output_of(self.live[0])

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


class _ToolRun:
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


class AgentMWMiddleware(AgentMiddleware[_State, Any, Any]):
    """Runs a LangChain v1 agent's model and tool calls through `agent`'s stack and sessions.

    Pass it first in `create_agent(..., middleware=[AgentMWMiddleware(agent), ...])` so it is
    the outermost wrapper: each agent run (`invoke`, `ainvoke`, `stream`, `astream`) opens one
    session of `agent` (its `thread_id` is the run's `config["configurable"]["thread_id"]`),
    each model call runs as a turn (model from the request, usage and cost from the reply's
    `usage_metadata`) and each tool call as a tool (the tool call id on the call). The session
    completes when the run ends; a run that raises through this middleware fails it.

    A tool call refused by Permissions, Guardrails, Limits or Policy (`REFUSALS`) becomes a
    `ToolMessage` with `status="error"` naming the refusal, which the model reads, unless
    `on_refusal="raise"`. Any other agentmw error (`BudgetExceededError`, `CircuitOpenError`...)
    ends the run.

    Args:
        agent: the agentmw `Agent` whose stack and sessions the runs use.
        on_refusal: "message" (a refused tool call becomes an error `ToolMessage`) or "raise".
        models: chat models by name, for a stack that switches the model (Fallback, Policy);
            a switch to a name not listed raises `ValueError`.
        name: the middleware's name in the agent (default "AgentMWMiddleware").

    Raises:
        TypeError: `agent` is not an `Agent`, or `models` is not a mapping of chat models.
        ValueError: `on_refusal` is neither "message" nor "raise".
    """

    state_schema = _State

    def __init__(
        self,
        agent: Agent,
        *,
        on_refusal: str = "message",
        models: Mapping[str, BaseChatModel] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.agent = check_instance("agent", agent, Agent, "an agentmw Agent")
        self.on_refusal = check_choice("on_refusal", on_refusal, ("message", "raise"))
        if models is not None and not isinstance(models, Mapping):
            raise TypeError(f"models must be a mapping of chat models, got {type(models).__name__}")
        for key, chat in (models or {}).items():
            check_instance(f"models[{key!r}]", chat, BaseChatModel, "a langchain chat model")
        self.models: dict[str, BaseChatModel] = dict(models or {})
        self._name = check_optional_name("name", name) or type(self).__name__
        self.tools = []
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"AgentMWMiddleware(agent={self.agent!r}, on_refusal={self.on_refusal!r})"

    # -- the run's session -----------------------------------------------------------------
    # A session sets the current-session context variable while it runs; LangGraph runs each
    # node in its own context, so the session is entered and left in a throwaway copy and set
    # as current around each model and tool call instead.
    def _register(self, session: Session, key: str | None = None) -> str:
        key = key or os.urandom(12).hex()
        with self._lock:
            self._sessions[key] = session
        return key

    def _pop(self, key: str | None) -> Session | None:
        if key is None:
            return None
        with self._lock:
            return self._sessions.pop(key, None)

    def _open(self, runtime: Any) -> Session:
        session = self.agent.session(_thread_id(runtime))
        contextvars.copy_context().run(session.__enter__)
        return session

    async def _aopen(self, runtime: Any) -> Session:
        session = self.agent.session(_thread_id(runtime))
        await asyncio.create_task(session.__aenter__())  # a task runs in a copy of the context
        return session

    def _close(self, session: Session, exc: BaseException | None) -> None:
        kind = None if exc is None else type(exc)
        contextvars.copy_context().run(session.__exit__, kind, exc, None)

    async def _aclose(self, session: Session, exc: BaseException | None) -> None:
        kind = None if exc is None else type(exc)
        await asyncio.create_task(session.__aexit__(kind, exc, None))

    def _found(self, state: Any) -> tuple[str | None, Session | None]:
        key = state.get(_KEY) if isinstance(state, Mapping) else None
        with self._lock:
            return key, self._sessions.get(key) if key is not None else None

    def _session(self, state: Any, runtime: Any) -> Session:
        """The run's session; a run resumed without `before_agent` (an interrupt) opens one."""
        key, session = self._found(state)
        if session is None:
            session = self._open(runtime)
            self._register(session, key)
        return session

    async def _asession(self, state: Any, runtime: Any) -> Session:
        key, session = self._found(state)
        if session is None:
            session = await self._aopen(runtime)
            self._register(session, key)
        return session

    def before_agent(self, state: _State, runtime: Runtime[Any]) -> dict[str, Any] | None:
        return {_KEY: self._register(self._open(runtime))}

    async def abefore_agent(self, state: _State, runtime: Runtime[Any]) -> dict[str, Any] | None:
        return {_KEY: self._register(await self._aopen(runtime))}

    def after_agent(self, state: _State, runtime: Runtime[Any]) -> dict[str, Any] | None:
        session = self._pop(state.get(_KEY))
        if session is not None:
            self._close(session, None)
        return None

    async def aafter_agent(self, state: _State, runtime: Runtime[Any]) -> dict[str, Any] | None:
        session = self._pop(state.get(_KEY))
        if session is not None:
            await self._aclose(session, None)
        return None

    def _ending(self, state: Any, exc: BaseException) -> Session | None:
        """The session to fail: the run ends with `exc` (an interrupt only pauses it)."""
        if isinstance(exc, GraphBubbleUp):
            return None
        return self._pop(self._found(state)[0])

    # -- model calls: turns ----------------------------------------------------------------
    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Any]
    ) -> Any:
        session = self._session(request.state, request.runtime)
        turn = _Turn(request, handler, self.models)
        token = CURRENT_SESSION.set(session)
        try:
            output, _ = session.run_turn(
                turn.run, model=turn.name, usage=turn.usage, messages=_view(request)
            )
            return turn.result(output)
        except BaseException as exc:
            ending = self._ending(request.state, exc)
            if ending is not None:
                self._close(ending, exc)
            raise
        finally:
            CURRENT_SESSION.reset(token)

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[Any]]
    ) -> Any:
        session = await self._asession(request.state, request.runtime)
        turn = _Turn(request, handler, self.models)
        token = CURRENT_SESSION.set(session)
        try:
            output, _ = await session.arun_turn(
                turn.arun, model=turn.name, usage=turn.usage, messages=_view(request)
            )
            return turn.result(output)
        except BaseException as exc:
            ending = self._ending(request.state, exc)
            if ending is not None:
                await self._aclose(ending, exc)
            raise
        finally:
            CURRENT_SESSION.reset(token)

    # -- tool calls: tools -----------------------------------------------------------------
    def _refused(self, request: ToolCallRequest, exc: Exception) -> ToolMessage | None:
        if self.on_refusal == "raise" or not isinstance(exc, REFUSALS):
            return None
        call = request.tool_call
        return ToolMessage(
            content=_refusal_text(exc), name=call["name"], tool_call_id=call["id"], status="error"
        )

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]
    ) -> ToolMessage | Command[Any]:
        session = self._session(request.state, request.runtime)
        run = _ToolRun(request, handler)
        call = request.tool_call
        token = CURRENT_SESSION.set(session)
        try:
            try:
                output = session.run_tool(
                    call["name"], run.run, dict(call["args"]), tool_call_id=call.get("id")
                )
            except Exception as exc:
                message = self._refused(request, exc)
                if message is None:
                    raise
                return message
            return run.result(output)
        except BaseException as exc:
            ending = self._ending(request.state, exc)
            if ending is not None:
                self._close(ending, exc)
            raise
        finally:
            CURRENT_SESSION.reset(token)

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> ToolMessage | Command[Any]:
        session = await self._asession(request.state, request.runtime)
        run = _ToolRun(request, handler)
        call = request.tool_call
        token = CURRENT_SESSION.set(session)
        try:
            try:
                output = await session.arun_tool(
                    call["name"], run.arun, dict(call["args"]), tool_call_id=call.get("id")
                )
            except Exception as exc:
                message = self._refused(request, exc)
                if message is None:
                    raise
                return message
            return run.result(output)
        except BaseException as exc:
            ending = self._ending(request.state, exc)
            if ending is not None:
                await self._aclose(ending, exc)
            raise
        finally:
            CURRENT_SESSION.reset(token)
