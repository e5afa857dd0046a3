"""The call path of a `Session`: run a `Call` through its chain and account for it.

`CallRunner` is a mixin of `Session` (kept apart so each module stays one concern): the runner
shared by the decorators (`run_chain`, `arun_chain`, `run_stream`, `arun_stream`) and the
imperative twins (`run_turn`, `arun_turn`, `run_tool`, `arun_tool`).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from agentmw.classify import exception_type, failure_class
from agentmw.core.call import Call, new_call
from agentmw.core.middleware import aclose
from agentmw.core.session.ledger import UsageTracker
from agentmw.core.session.lifecycle import AgentState
from agentmw.core.stack import Stack
from agentmw.errors import ControlFlowError, SessionClosedError, SessionStateError
from agentmw.events import Event, UsageRecord
from agentmw.pricing import call_cost
from agentmw.usage import ZERO_USAGE, Usage

if TYPE_CHECKING:
    from agentmw.core.agent import Agent
    from agentmw.core.session.session import Session

__all__: list[str] = []  # `Session` is the public face of this module

_ZERO = Decimal(0)


class CallRunner:
    """Runs calls for a `Session` (see the module docstring)."""

    # Provided by `Session`.
    id: str
    agent: Agent
    stack: Stack
    ledger: UsageTracker
    _state: AgentState
    _lock: threading.Lock
    _steps: Iterator[int]
    _iterations: int
    _tool_calls: int

    if TYPE_CHECKING:

        def _publish(self, event: Event) -> Event: ...

        def _sink_failed(self, sink: object, exc: BaseException) -> None: ...

    # -- the call runner (shared by decorators and run_* methods) ---------------------------
    def _begin(self, call: Call) -> None:
        state = self._state
        if state is not AgentState.RUNNING:
            if state.terminal:
                raise SessionClosedError(self.id, state)
            raise SessionStateError(
                self.id, state, f"session {self.id} is {state.value}; calls need a running session"
            )
        step = call.step = next(self._steps)
        agent = self.agent
        if call.kind == "turn":
            event = Event(
                "turn.started", self.id, agent.role, agent.phase, agent.project_id, step,
                call.model,
            )  # fmt: skip
        else:
            event = Event(
                "tool.called", self.id, agent.role, agent.phase, agent.project_id, step, None,
                call.name,
            )  # fmt: skip
        self._publish(event)

    def _completed(self, call: Call) -> None:
        agent = self.agent
        usage = call.usage or ZERO_USAGE
        cost = call_cost(call) if call.kind == "turn" else _ZERO
        with self._lock:
            if call.kind == "turn":
                self._iterations += 1
            else:
                self._tool_calls += 1
        if call.kind == "turn":
            self.ledger.record(call.model, usage, cost)
            sink = agent.usage_sink
            if sink is not None:
                record = UsageRecord(
                    self.id,
                    self.agent.role,
                    call.model,
                    call.kind,
                    call.name,
                    call.step,
                    usage,
                    cost,
                    self.agent.project_id,
                )
                first_error = self.agent._isolation.call(sink, sink.record, record)
                if first_error is not None:
                    self._sink_failed(sink, first_error)
            data = {"usage": usage.as_dict(), "attempts": call.attempt, "cost_usd": str(cost)}
            event = Event(
                "turn.completed", self.id, agent.role, agent.phase, agent.project_id, call.step,
                call.model, None, None, None, data,
            )  # fmt: skip
        else:
            event = Event(
                "tool.completed", self.id, agent.role, agent.phase, agent.project_id, call.step,
                None, call.name,
            )  # fmt: skip
        self._publish(event)

    def _failed(self, call: Call, exc: BaseException) -> None:
        if not isinstance(exc, ControlFlowError):
            with self._lock:
                if call.kind == "turn":
                    self._iterations += 1
                else:
                    self._tool_calls += 1
        agent, turn = self.agent, call.kind == "turn"
        self._publish(
            Event(
                "turn.failed" if turn else "tool.failed",
                self.id,
                agent.role,
                agent.phase,
                agent.project_id,
                call.step,
                call.model if turn else None,
                None if turn else call.name,
                failure_class(exc),
                exception_type(exc),
            )
        )

    def run_chain(self, call: Call, chain: Callable[[Call], Any]) -> Any:
        self._begin(call)
        try:
            result = chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result

    async def arun_chain(self, call: Call, chain: Callable[[Call], Any]) -> Any:
        self._begin(call)
        try:
            result = await chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result

    def run_stream(self, call: Call, chain: Callable[[Call], Iterator[Any]]) -> Iterator[Any]:
        self._begin(call)
        try:
            yield from chain(call)
        except GeneratorExit:
            self._completed(call)  # the consumer stopped early: what it got was a success
            raise
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)

    async def arun_stream(
        self, call: Call, chain: Callable[[Call], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        self._begin(call)
        agen = chain(call)
        try:
            async for chunk in agen:
                yield chunk
        except GeneratorExit:
            self._completed(call)
            raise
        except BaseException as exc:
            self._failed(call, exc)
            raise
        finally:
            await aclose(agen)
        self._completed(call)

    # -- imperative twins ------------------------------------------------------------------
    def _call(
        self,
        kind: str,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        model: str | None,
        usage: Usage | Callable[[Any], Usage | None] | None,
    ) -> Call:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if code_flags(fn) & _GENERATOR_FLAGS:
            raise TypeError("run_turn/run_tool take plain functions; decorate generators instead")
        if usage is None or callable(usage):
            usage_fn = usage
        elif isinstance(usage, Usage):
            fixed = usage
            usage_fn = lambda _result: fixed  # noqa: E731
        else:
            raise TypeError(f"usage must be a Usage or a callable, got {type(usage).__name__}")
        return new_call(
            kind,  # type: ignore[arg-type]
            name,
            fn,
            model=model,
            args=args,
            kwargs=kwargs,
            session=cast("Session", self),
            usage_fn=usage_fn,
        )

    def _chain(self, kind: str, mode: str, timeout: float | None) -> Callable[[Call], Any]:
        stack = self.stack if timeout is None else self.stack.with_timeout(timeout)
        return stack.chain(kind, mode)  # type: ignore[arg-type]

    def run_turn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        model: str | None = None,
        usage: Usage | Callable[[Any], Usage | None] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Usage]:
        """Run one model turn through the session's stack; returns (result, usage)."""
        if code_flags(fn) & inspect.CO_COROUTINE:
            raise TypeError("run_turn got an async function; use `await session.arun_turn(...)`")
        call = self._call("turn", _name_of(fn), fn, args, kwargs, model, usage)
        result = self.run_chain(call, self._chain("turn", "sync", timeout))
        return result, call.usage or ZERO_USAGE

    async def arun_turn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        model: str | None = None,
        usage: Usage | Callable[[Any], Usage | None] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the contract: same options as run_turn)
        **kwargs: Any,
    ) -> tuple[Any, Usage]:
        """Async twin of `run_turn`: `fn` may be async or return an awaitable."""
        call = self._call("turn", _name_of(fn), _awaitable(fn), args, kwargs, model, usage)
        result = await self.arun_chain(call, self._chain("turn", "async", timeout))
        return result, call.usage or ZERO_USAGE

    def run_tool(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one tool call named `name` through the session's stack."""
        if code_flags(fn) & inspect.CO_COROUTINE:
            raise TypeError("run_tool got an async function; use `await session.arun_tool(...)`")
        call = self._call("tool", _check_name(name), fn, args, kwargs, None, None)
        return self.run_chain(call, self.stack.chain("tool", "sync"))

    async def arun_tool(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Async twin of `run_tool`: `fn` may be async or return an awaitable."""
        call = self._call("tool", _check_name(name), _awaitable(fn), args, kwargs, None, None)
        return await self.arun_chain(call, self.stack.chain("tool", "async"))


def _awaitable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself when it is async; else an async adapter (the async chain awaits `fn(...)`)."""
    if not callable(fn) or code_flags(fn) & inspect.CO_COROUTINE:
        return fn

    @functools.wraps(fn)
    async def adapter(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return adapter


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def code_flags(fn: Any) -> int:
    """The code flags that say whether `fn` is a coroutine or generator function.

    Reads `__code__` directly (functions, bound methods, wrapt proxies): `inspect`'s three
    predicates cost several microseconds per `run_turn` together. Other callables (partials,
    objects with `__call__`) go through `inspect`, which unwraps them.
    """
    code = getattr(fn, "__code__", None)
    if code is not None:
        return int(code.co_flags)
    flags = 0
    if inspect.iscoroutinefunction(fn):
        flags |= inspect.CO_COROUTINE
    if inspect.isgeneratorfunction(fn):
        flags |= inspect.CO_GENERATOR
    if inspect.isasyncgenfunction(fn):
        flags |= inspect.CO_ASYNC_GENERATOR
    return flags


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"tool name must be a non-blank string, got {name!r}")
    return name
