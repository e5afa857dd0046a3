"""`Session`: one run of an agent, with its lifecycle, usage ledger and events."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _events
from ._call import Call
from ._classify import classify_exception
from ._errors import ControlFlowError, SessionClosedError, SessionStateError
from ._events import Event, UsageRecord, has_listeners, notify_listeners
from ._handoff import Handoff
from ._ledger import UsageTracker
from ._lifecycle import AgentState, check_transition
from ._middleware import aclose
from ._pricing import call_cost, format_cost
from ._stack import Stack
from ._usage import ZERO_USAGE, Usage

if TYPE_CHECKING:
    from ._agent import Agent
    from .quality import GateOutcome, QualityGate

__all__ = ["Session", "current_session"]

_current: ContextVar[Session | None] = ContextVar("agentmw_session", default=None)

EVENT_CAPACITY = 1000
_ZERO = Decimal(0)


def current_session() -> Session | None:
    """The session of the running context (propagates into tasks and library worker threads)."""
    return _current.get()


def exception_type(exc: BaseException) -> str:
    """The qualified type name events and spans carry instead of the message."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def failure_class(exc: BaseException) -> str:
    """The failure class events carry: the scenario `classify_exception` assigns."""
    return classify_exception(exc).scenario.value


class Session:
    """One run of an agent: use as `with agent.session() as s:` or `async with ...`.

    Attributes:
        id: unique id of this session.
        agent: the agent the session belongs to.
        thread_id: durable thread id (checkpointed replay) or None.
        handoff: the context of the handoff that started this session, if any.
        received_handoff: that `Handoff` itself, if any.
        meta: per-session scratch space for layers (set up in `open_session`).
    """

    def __init__(
        self, agent: Agent, thread_id: str | None = None, *, handoff: Handoff | None = None
    ) -> None:
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id.strip()):
            raise ValueError(f"thread_id must be a non-blank string or None, got {thread_id!r}")
        if handoff is not None and not isinstance(handoff, Handoff):
            raise TypeError(f"handoff must be a Handoff, got {type(handoff).__name__}")
        self.id = uuid.uuid4().hex
        self.agent = agent
        self.thread_id = thread_id
        self.received_handoff = handoff
        self.handoff: dict[str, Any] | None = dict(handoff.context) if handoff else None
        self.meta: dict[str, Any] = {}
        self.stack: Stack = agent.resolved_stack()
        self.ledger = UsageTracker()
        self.recoveries: list[dict[str, Any]] = []
        self.pending_prompt: str | None = None
        self._state = AgentState.INITIALIZING
        self._lock = threading.Lock()
        self._steps = itertools.count(1)
        self._iterations = 0
        self._tool_calls = 0
        self._events: deque[Event] = deque(maxlen=EVENT_CAPACITY)
        self._event_counts: dict[str, int] = {}
        self._token: Token[Session | None] | None = None
        self._started = 0.0
        self._ended: float | None = None
        self.started_at: datetime | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._waiter_loop: asyncio.AbstractEventLoop | None = None

    # -- read-only views -------------------------------------------------------------------
    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def iterations(self) -> int:
        """Turns run in this session (replayed turns included)."""
        return self._iterations

    @property
    def tool_calls(self) -> int:
        """Tool calls run in this session."""
        return self._tool_calls

    @property
    def usage(self) -> Usage:
        """Running usage total."""
        return self.ledger.usage

    @property
    def cost_usd(self) -> Decimal:
        """Running cost total."""
        return self.ledger.cost_usd

    @property
    def events(self) -> list[Event]:
        """The most recent events (bounded), oldest first."""
        return list(self._events)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the session started (0 before it starts)."""
        if not self._started:
            return 0.0
        return (self._ended or time.monotonic()) - self._started

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, role={self.agent.role!r}, state={self._state.value})"

    # -- events ----------------------------------------------------------------------------
    def emit(
        self,
        name: str,
        *,
        step: int | None = None,
        model: str | None = None,
        tool: str | None = None,
        failure_class: str | None = None,
        detail: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record an event and send it to the agent's sink and the process listeners."""
        agent = self.agent
        return self._publish(
            Event(
                name,
                self.id,
                agent.role,
                agent.phase,
                agent.project_id,
                step,
                model,
                tool,
                failure_class,
                detail,
                data,
            )
        )

    def _publish(self, event: Event) -> Event:
        # Split from `emit` so the per-call events skip keyword-argument binding.
        self._events.append(event)
        counts = self._event_counts
        name = event.name
        with self._lock:
            counts[name] = counts.get(name, 0) + 1
        agent = self.agent
        sink = agent.event_sink
        if sink is not None:
            try:
                sink.emit(event)
            except Exception as exc:  # a sink must never break a session
                if agent._isolation.failed(sink, exc):
                    self._sink_failed(sink, exc)
        if _events._listeners:
            notify_listeners(event)
        return event

    def _sink_failed(self, sink: object, exc: BaseException) -> None:
        # Reported once per sink, on the session's own buffer (never through the failing sink).
        diag = Event(
            "sink.failed",
            self.id,
            self.agent.role,
            self.agent.phase,
            self.agent.project_id,
            failure_class=exception_type(exc),
            detail=type(sink).__qualname__,
        )
        self._events.append(diag)
        with self._lock:
            self._event_counts[diag.name] = self._event_counts.get(diag.name, 0) + 1
        if has_listeners():
            notify_listeners(diag)

    # -- lifecycle -------------------------------------------------------------------------
    def _transition(self, target: AgentState) -> bool:
        with self._lock:
            if self._state is target:
                return False
            check_transition(self._state, target)
            self._state = target
            if target.terminal:
                self._ended = time.monotonic()
        return True

    def _finish(self, target: AgentState, event: str, detail: str | None) -> None:
        if self._transition(target):
            self.emit(event, detail=detail)
            self.agent.registry._mark_finished(self)

    def complete(self) -> None:
        """Mark the session COMPLETED (leaving the block cleanly does this for you)."""
        self._finish(AgentState.COMPLETED, "agent.completed", None)

    def fail(self, detail: str | None = None) -> None:
        """Mark the session FAILED; `detail` should be a type or a code, not a message."""
        self._finish(AgentState.FAILED, "agent.failed", detail)

    def cancel(self, detail: str | None = None) -> None:
        """Mark the session CANCELLED."""
        self._finish(AgentState.CANCELLED, "agent.cancelled", detail)

    def _enter(self) -> None:
        with self._lock:  # a session runs once: entering it again is an invalid transition
            check_transition(self._state, AgentState.RUNNING)
            self._state = AgentState.RUNNING
        self._started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self._token = _current.set(self)
        self.agent.registry._register(self)
        data = {"thread_id": self.thread_id} if self.thread_id else None
        if self.received_handoff is not None:
            data = {**(data or {}), "handoff_from": self.received_handoff.source_role}
        self.emit("agent.started", data=data)

    def _exit(self, exc: BaseException | None) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # exited in another context than it was entered in
                _current.set(None)
            self._token = None
        if self._state.terminal:
            return
        if exc is None:
            self.complete()
        elif isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
            self.cancel(exception_type(exc))
        else:
            self.fail(exception_type(exc))

    def __enter__(self) -> Session:
        self._enter()
        opened: list[Any] = []
        try:
            for layer in self.stack:
                layer.open_session(self)
                opened.append(layer)
        except BaseException as exc:
            self._close_layers(opened, exc)
            self._exit(exc)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)
        self._close_layers(list(self.stack), exc)

    def _close_layers(self, layers: list[Any], error: BaseException | None) -> None:
        for layer in reversed(layers):
            try:
                layer.close_session(self, error)
            except Exception as exc:  # one layer's teardown must not skip the others
                self.emit(
                    "layer.close_failed", detail=layer.name, failure_class=exception_type(exc)
                )

    async def __aenter__(self) -> Session:
        self._enter()
        opened: list[Any] = []
        try:
            for layer in self.stack:
                await layer.aopen_session(self)
                opened.append(layer)
        except BaseException as exc:
            await self._aclose_layers(opened, exc)
            self._exit(exc)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)
        await self._aclose_layers(list(self.stack), exc)

    async def _aclose_layers(self, layers: list[Any], error: BaseException | None) -> None:
        for layer in reversed(layers):
            try:
                await layer.aclose_session(self, error)
            except Exception as exc:
                self.emit(
                    "layer.close_failed", detail=layer.name, failure_class=exception_type(exc)
                )

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
        self.emit(
            "turn.failed" if call.kind == "turn" else "tool.failed",
            step=call.step,
            model=call.model if call.kind == "turn" else None,
            tool=call.name if call.kind == "tool" else None,
            failure_class=failure_class(exc),
            detail=exception_type(exc),
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
        return Call(
            kind,  # type: ignore[arg-type]
            name,
            fn,
            model,
            args,
            kwargs,
            session=self,
            agent=self.agent,
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

    # -- human in the loop -------------------------------------------------------------------
    async def wait_for_input(self, prompt: str) -> Any:
        """Wait (state WAITING_FOR_INPUT) until `provide_input(value)`; returns the value."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._waiter is not None:
                raise SessionStateError(self.id, self._state, "already waiting for input")
            check_transitions = self._state
        check_transition(check_transitions, AgentState.WAITING_FOR_INPUT)
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiter, self._waiter_loop = future, loop
        self._transition(AgentState.WAITING_FOR_INPUT)
        self.pending_prompt = prompt
        self.emit("agent.waiting_for_input")
        try:
            value = await future
        finally:
            with self._lock:
                self._waiter = self._waiter_loop = None
            self.pending_prompt = None
        self._transition(AgentState.RUNNING)
        self.emit("agent.input_received")
        return value

    def provide_input(self, value: Any) -> None:
        """Answer a pending `wait_for_input` (callable from any thread).

        Raises:
            SessionStateError: the session is not waiting for input.
        """
        with self._lock:
            future, loop = self._waiter, self._waiter_loop
        if future is None or loop is None:
            raise SessionStateError(self.id, self._state, "the session is not waiting for input")

        def _set() -> None:
            if not future.done():
                future.set_result(value)

        loop.call_soon_threadsafe(_set)

    # -- handoff and summary -----------------------------------------------------------------
    def handoff_to(
        self, target: Agent | str, *, reason: str, context: Mapping[str, Any] | None = None
    ) -> Handoff:
        """Hand the work to `target` (an Agent or a role): completes this session."""
        target_role = target if isinstance(target, str) else target.role
        handoff = Handoff(
            source_role=self.agent.role,
            target_role=target_role,
            reason=reason,
            context=dict(context) if context is not None else {},
            project_id=self.agent.project_id,
            source_session_id=self.id,
        )
        self.emit("handoff.created", data={"target_role": target_role})
        self.complete()
        return handoff

    def evaluate_gate(self, observed: Any, gate: QualityGate | None = None) -> GateOutcome:
        """Check `observed` (a `QualityLevel`) against `gate` or the session's gate.

        Returns a `GateOutcome`, emits `gate.passed` / `gate.failed` and feeds the
        `quality_level` and `gate_score` policy facts (see `agentmw.quality`).
        """
        from .quality import evaluate_gate

        return evaluate_gate(self, observed, gate)

    def summary(self) -> dict[str, Any]:
        """State, turns, tool calls, usage and cost totals, per-model usage and event counts."""
        with self._lock:
            counts = dict(self._event_counts)
        ledger = self.ledger.summary()
        return {
            "session_id": self.id,
            "role": self.agent.role,
            "phase": self.agent.phase,
            "project_id": self.agent.project_id,
            "thread_id": self.thread_id,
            "state": self._state.value,
            "turns": self._iterations,
            "tool_calls": self._tool_calls,
            "usage": ledger["usage"],
            "cost_usd": ledger["cost_usd"],
            "cost": format_cost(ledger["cost_usd"]),
            "models": ledger["models"],
            "events": counts,
            "recoveries": list(self.recoveries),
            "elapsed_s": round(self.elapsed_s, 6),
        }


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
