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
from typing import Annotated, Any, NotRequired

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
    from langchain.agents.middleware.types import PrivateStateAttr
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import ToolMessage
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
from agentmw.integrations._toolcalls import REFUSALS, is_refusal, refusal_text
from agentmw.integrations.langchain._calls import (
    ModelOutput,
    ToolOutput,
    ToolRun,
    Turn,
    message_view,
    usage_from_message,
)

__all__ = ["REFUSALS", "AgentMWMiddleware", "ModelOutput", "ToolOutput", "usage_from_message"]

_KEY = "agentmw_session"


class _State(AgentState[Any]):
    """The agent state this middleware adds: the key of the run's session (private)."""

    agentmw_session: NotRequired[Annotated[str | None, PrivateStateAttr]]


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


class AgentMWMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
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

    def before_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        return {_KEY: self._register(self._open(runtime))}

    async def abefore_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        return {_KEY: self._register(await self._aopen(runtime))}

    def after_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        session = self._pop(self._found(state)[0])
        if session is not None:
            self._close(session, None)
        return None

    async def aafter_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        session = self._pop(self._found(state)[0])
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
        turn = Turn(request, handler, self.models)
        token = CURRENT_SESSION.set(session)
        try:
            output, _ = session.run_turn(
                turn.sync(), model=turn.name, usage=turn.usage, messages=message_view(request)
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
        turn = Turn(request, handler, self.models)
        token = CURRENT_SESSION.set(session)
        try:
            output, _ = await session.arun_turn(
                turn.async_(), model=turn.name, usage=turn.usage, messages=message_view(request)
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
        if self.on_refusal == "raise" or not is_refusal(exc):
            return None
        call = request.tool_call
        return ToolMessage(
            content=refusal_text(exc), name=call["name"], tool_call_id=call["id"], status="error"
        )

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]
    ) -> ToolMessage | Command[Any]:
        session = self._session(request.state, request.runtime)
        run = ToolRun(request, handler)
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
        run = ToolRun(request, handler)
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
