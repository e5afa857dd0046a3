"""`Session`: one run of an agent, composed of its lifecycle, event log, call runner and
human input."""

from __future__ import annotations

import operator
import os
from collections.abc import Awaitable, Callable, Mapping
from contextvars import Token
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from agentmw._validate import check_methods, check_optional_name
from agentmw.classify import exception_type, is_cancellation
from agentmw.core.context import CURRENT_SESSION, session_closed, session_opened
from agentmw.core.loops import Plan, arun_plan, run_plan
from agentmw.core.session.event_log import EventLog
from agentmw.core.session.human_input import HumanInput
from agentmw.core.session.ledger import UsageTracker
from agentmw.core.session.lifecycle import AgentState, Lifecycle
from agentmw.core.session.runner import CallRunner
from agentmw.core.session.threads import SessionWork, agather, bind
from agentmw.core.stack import Stack
from agentmw.events import Event
from agentmw.pricing import format_cost
from agentmw.usage import Usage

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from agentmw.core.agent import Agent
    from agentmw.core.handoff import Handoff
    from agentmw.core.middleware import Middleware
    from agentmw.quality import GateOutcome, QualityGate

__all__ = ["Session"]

# The layer hooks a plan calls: (open, close) for `with` and for `async with`.
_SYNC_HOOKS = ("open_session", "close_session")
_ASYNC_HOOKS = ("aopen_session", "aclose_session")


def _no_op() -> None:
    """A retired session's `on_finished`: it has finished already."""


P = ParamSpec("P")
R = TypeVar("R")


class _PartMethod(Generic[P, R]):
    """The type of a session method that is one of its parts' own (see `_part_method`)."""

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _PartMethod[P, R]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(self, obj: object, owner: type[Any] | None = None) -> Any: ...


def _part_method(part: str, method: Callable[Concatenate[Any, P], R]) -> _PartMethod[P, R]:
    """`Session.run_turn` is its runner's `run_turn`: looked up when read, with no bound method
    stored per session and no Python frame (a `property` over an `attrgetter`, both in C).
    Typed as `_PartMethod` so callers see the part method's own signature."""
    getter = operator.attrgetter(f"{part}.{method.__name__}")
    return cast("_PartMethod[P, R]", property(getter, doc=method.__doc__))


T = TypeVar("T")


class _PartValue(Generic[T]):
    """The type of a session attribute that is one of its parts' own (see `_part_value`)."""

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _PartValue[T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> T: ...
    def __get__(self, obj: object, owner: type[Any] | None = None) -> Any: ...


def _part_value(path: str, kind: type[T], doc: str) -> _PartValue[T]:
    """A read-only session attribute read from a part (`"_runner.iterations"`): a `property`
    over an `attrgetter`, so layers reading it on every call run no Python frame."""
    return cast("_PartValue[T]", property(operator.attrgetter(path), doc=doc))


class Session:
    """One run of an agent: use as `with agent.session() as s:` or `async with ...`.

    A session is composed of small parts, each with its own state: its `Lifecycle` (state
    machine, times), its `EventLog` (recent events, counts, sinks), its `CallRunner` (steps,
    counters, per-call accounting) and its `HumanInput`. The call methods (`run_turn`,
    `arun_turn`, `run_tool`, `arun_tool`, `run_chain`, `arun_chain`, `run_stream`,
    `arun_stream`) and human input (`wait_for_input`, `provide_input`) are those parts' own
    methods, bound on each session.

    Attributes:
        id: unique id of this session.
        agent: the agent the session belongs to.
        thread_id: durable thread id (checkpointed replay) or None.
        handoff: the context of the handoff that started this session, if any.
        received_handoff: that `Handoff` itself, if any.
        meta: per-session scratch space for layers (set up in `open_session`).
        stack: the stack the session's calls run through (the agent's, resolved at creation).
        ledger: usage and cost totals, per model.
        recoveries: what retry and fallback did (one dict per recovery), oldest first.
    """

    def __init__(
        self, agent: Agent, thread_id: str | None = None, *, handoff: Handoff | None = None
    ) -> None:
        check_methods("agent", agent, ("resolved_stack",), "an Agent")
        check_optional_name("thread_id", thread_id)
        if handoff is not None:
            # Imported here: Handoff is a pydantic model, and `import agentmw` stays light.
            from agentmw.core.handoff import Handoff

            if not isinstance(handoff, Handoff):
                raise TypeError(f"handoff must be a Handoff, got {type(handoff).__name__}")
        self.id = os.urandom(16).hex()  # 128 random bits, like uuid4, without importing uuid
        self.agent = agent
        self.thread_id = thread_id
        self.received_handoff = handoff
        self.handoff: dict[str, Any] | None = dict(handoff.context) if handoff else None
        self.meta: dict[str, Any] = {}
        self.stack: Stack = agent.resolved_stack()
        self.ledger = UsageTracker()
        self.recoveries: list[dict[str, Any]] = []
        self._token: Token[Session | None] | None = None
        self._work = SessionWork()
        # One lock for the session's parts (each holds it over a few operations, none calls
        # out under it): two fewer locks per live session.
        lock = self.ledger.lock
        log = self._log = EventLog(self.id, agent, lock=lock)
        lifecycle = self._lifecycle = Lifecycle(log, self._finished, lock)
        runner = self._runner = CallRunner(self, log, lifecycle)
        self._human = HumanInput(self.id, lifecycle, log)
        # The decorators' per-call path: the runner's own bound methods, stored on the session
        # (no extra frame per call). The other part methods are looked up on access
        # (`_PartMethod`): ten bound methods per session were most of a live session's size.
        self.run_chain = runner.run_chain
        """Run a call through a compiled chain (the decorators' path): `CallRunner.run_chain`."""
        self.arun_chain = runner.arun_chain
        """Async twin of `run_chain`: `CallRunner.arun_chain`."""

    # -- the parts' methods ----------------------------------------------------------------
    run_stream = _part_method("_runner", CallRunner.run_stream)
    """Stream a call through a compiled chain: `CallRunner.run_stream`."""
    arun_stream = _part_method("_runner", CallRunner.arun_stream)
    """Async twin of `run_stream`: `CallRunner.arun_stream`."""
    run_turn = _part_method("_runner", CallRunner.run_turn)
    """Run one model turn through the session's stack: `CallRunner.run_turn`."""
    arun_turn = _part_method("_runner", CallRunner.arun_turn)
    """Async twin of `run_turn`: `CallRunner.arun_turn`."""
    run_tool = _part_method("_runner", CallRunner.run_tool)
    """Run one tool call through the session's stack: `CallRunner.run_tool`."""
    arun_tool = _part_method("_runner", CallRunner.arun_tool)
    """Async twin of `run_tool`: `CallRunner.arun_tool`."""
    wait_for_input = _part_method("_human", HumanInput.wait_for_input)
    """Wait (WAITING_FOR_INPUT) for `provide_input`: `HumanInput.wait_for_input`."""
    provide_input = _part_method("_human", HumanInput.provide_input)
    """Answer a pending `wait_for_input`: `HumanInput.provide_input`."""

    # -- read-only views -------------------------------------------------------------------
    state = _part_value("_lifecycle.state", AgentState, "Where the session is in its lifecycle.")
    iterations = _part_value(
        "_runner.iterations", int, "Turns run in this session (replayed turns included)."
    )
    tool_calls = _part_value("_runner.tool_calls", int, "Tool calls run in this session.")

    @property
    def usage(self) -> Usage:
        """Running usage total."""
        return self.ledger.usage

    cost_usd = _part_value("ledger.cost_usd", Decimal, "Running cost total.")

    @property
    def events(self) -> list[Event]:
        """The most recent events (bounded), oldest first."""
        return self._log.events

    @property
    def elapsed_s(self) -> float:
        """Seconds since the session started (0 before it starts)."""
        return self._lifecycle.elapsed_s

    @property
    def started_at(self) -> datetime | None:
        """When the session started (UTC), or None before it starts."""
        return self._lifecycle.started_at

    @property
    def pending_prompt(self) -> str | None:
        """The prompt a `wait_for_input` is waiting on, or None."""
        return self._human.pending_prompt

    def tool_count(self, name: str) -> int:
        """Calls of the tool `name` run in this session (the `tool_count` policy fact)."""
        return self._runner.tool_counts.get(name, 0)

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, role={self.agent.role!r}, state={self.state.value})"

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
        return self._log.emit(
            name,
            step=step,
            model=model,
            tool=tool,
            failure_class=failure_class,
            detail=detail,
            data=data,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def complete(self) -> None:
        """Mark the session COMPLETED (leaving the block cleanly does this for you)."""
        self._lifecycle.finish(AgentState.COMPLETED)

    def fail(self, detail: str | None = None) -> None:
        """Mark the session FAILED; `detail` should be a type or a code, not a message."""
        self._lifecycle.finish(AgentState.FAILED, detail)

    def cancel(self, detail: str | None = None) -> None:
        """Mark the session CANCELLED."""
        self._lifecycle.finish(AgentState.CANCELLED, detail)

    # -- following the work into threads and tasks ------------------------------------------
    def bind(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` made to run in this session wherever it is called (any thread, any task).

        A plain `threading.Thread`, a `ThreadPoolExecutor` or `loop.run_in_executor` starts
        without the current session; pass them `session.bind(fn)` and every decorated call
        `fn` makes counts here. A coroutine function gives a coroutine function.

        Raises:
            TypeError: `fn` is not callable, or is a generator function (bind a function that
                iterates the stream).
        """
        return bind(self, fn)

    def executor(self, max_workers: int | None = None) -> ThreadPoolExecutor:
        """A `ThreadPoolExecutor` whose tasks run in this session.

        Usable as a context manager (leaving it waits for its tasks). When the session ends,
        it shuts down every executor it handed out first: after a clean exit it waits for all
        their submitted tasks, so their calls are counted before the session completes; after
        an exception (or cancellation) it cancels the tasks that have not started and waits for
        the running ones. The async exit waits in a worker thread, never on the event loop.

        Args:
            max_workers: the pool's size (default: `ThreadPoolExecutor`'s).

        Raises:
            TypeError: `max_workers` is not an int.
            ValueError: `max_workers` is below 1.
        """
        return self._work.executor(self, max_workers)

    async def agather(
        self,
        *awaitables: Awaitable[Any],
        timeout: float | None = None,  # noqa: ASYNC109 (the contract)
    ) -> list[Any]:
        """Run `awaitables` concurrently in this session; their results, in order.

        They run as tasks of one `asyncio.TaskGroup`, each in the session (also when the caller
        is not), under one group deadline: past `timeout` seconds every unfinished one is
        cancelled and `TimeoutError` is raised. A failure cancels the others and comes out as
        the TaskGroup's `ExceptionGroup` (catch it with `except*`).

        Raises:
            TypeError: an argument is not awaitable, or `timeout` is not a number.
            ValueError: `timeout` is negative.
            TimeoutError: the group deadline passed.
        """
        return await agather(self, awaitables, timeout)

    def __enter__(self) -> Session:
        run_plan(self._entering(_SYNC_HOOKS))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._work.shutdown(exc)  # its executors' tasks finish inside the running session
        finally:
            run_plan(self._leaving(exc, _SYNC_HOOKS))

    async def __aenter__(self) -> Session:
        await arun_plan(self._entering(_ASYNC_HOOKS))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._work.ashutdown(exc)
        finally:
            await arun_plan(self._leaving(exc, _ASYNC_HOOKS))

    # The plans behind `with` and `async with` (see `agentmw.core.loops.run_plan`): each step
    # is one layer hook's result (sync) or awaitable (async); a failure comes back in here.
    def _entering(self, hooks: tuple[str, str]) -> Plan[None]:
        """Start, then open the layers in stack order; if one fails, close those opened."""
        self._start()
        opened: list[Middleware] = []
        try:
            for layer in self.stack:
                yield getattr(layer, hooks[0])(self)
                opened.append(layer)
        except BaseException as exc:
            yield from self._closing(opened, exc, hooks)
            self._end(exc)
            raise

    def _leaving(self, error: BaseException | None, hooks: tuple[str, str]) -> Plan[None]:
        """End by how the block ended, then close every layer in reverse stack order."""
        self._end(error)
        yield from self._closing(list(self.stack), error, hooks)

    def _closing(
        self, layers: list[Middleware], error: BaseException | None, hooks: tuple[str, str]
    ) -> Plan[None]:
        for layer in reversed(layers):
            try:
                yield getattr(layer, hooks[1])(self, error)
            except Exception as exc:  # one layer's teardown must not skip the others
                self.emit(
                    "layer.close_failed", detail=layer.name, failure_class=exception_type(exc)
                )

    def _start(self) -> None:
        self._lifecycle.start()  # a session runs once: entering it again is an invalid transition
        self._token = CURRENT_SESSION.set(self)
        session_opened()
        self.agent.registry.register(self)
        data = {"thread_id": self.thread_id} if self.thread_id else None
        if self.received_handoff is not None:
            data = {**(data or {}), "handoff_from": self.received_handoff.source_role}
        self._runner.record_event("agent.started", data)  # a compact record, as a call's

    def _end(self, exc: BaseException | None) -> None:
        if self._token is not None:
            try:
                CURRENT_SESSION.reset(self._token)
            except ValueError:  # exited in another context than it was entered in
                CURRENT_SESSION.set(None)
            self._token = None
            session_closed()
        if self.state.terminal:
            return
        if exc is None:
            self.complete()
        elif is_cancellation(exc):
            self.cancel(exception_type(exc))
        else:
            self.fail(exception_type(exc))

    # -- what the registry keeps once the session has finished -------------------------------
    def _finished(self) -> None:
        """What the lifecycle calls once, at the end: the registry keeps the summary."""
        self.agent.registry.mark_finished(self)

    def _retired(self) -> Session:
        """A stand-in for this finished session with its summary but no event buffer.

        What `AgentRegistry` keeps once nothing else holds the session: the same id, agent,
        state, times, counters, ledger, event counts, `meta` and `recoveries` (shared, so what
        the closing layers add still shows), and an empty `events`. It holds no reference to
        this session, so the event buffer is freed with it. Its calls raise
        `SessionClosedError` like this session's.
        """
        copy: Session = Session.__new__(Session)
        copy.__dict__.update(self.__dict__)
        state: dict[str, Any] = {}
        log = EventLog(self.id, self.agent, capacity=0)
        log.share_counts(self._log)
        lifecycle = Lifecycle(log, _no_op)
        source = self._lifecycle
        lifecycle.state = source.state
        lifecycle.started = source.started
        lifecycle.ended = source.ended
        lifecycle.started_at = source.started_at
        runner = CallRunner(copy, log, lifecycle)
        runner.iterations = self._runner.iterations
        runner.tool_calls = self._runner.tool_calls
        runner.tool_counts = dict(self._runner.tool_counts)
        state.update(
            _log=log,
            _lifecycle=lifecycle,
            _runner=runner,
            _human=HumanInput(self.id, lifecycle, log),
            _work=SessionWork(),
            _token=None,
            run_chain=runner.run_chain,
            arun_chain=runner.arun_chain,
        )
        copy.__dict__.update(state)
        return copy

    # -- handoff and summary -----------------------------------------------------------------
    def handoff_to(
        self, target: Agent | str, *, reason: str, context: Mapping[str, Any] | None = None
    ) -> Handoff:
        """Hand the work to `target` (an Agent or a role): completes this session."""
        target_role = target if isinstance(target, str) else target.role
        from agentmw.core.handoff import Handoff

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
        from agentmw.quality import evaluate_gate

        return evaluate_gate(self, observed, gate)

    def summary(self) -> dict[str, Any]:
        """State, turns, tool calls, usage and cost totals, per-model usage and event counts."""
        counts = self._log.counts()
        ledger = self.ledger.summary()
        return {
            "session_id": self.id,
            "role": self.agent.role,
            "phase": self.agent.phase,
            "project_id": self.agent.project_id,
            "thread_id": self.thread_id,
            "state": self.state.value,
            "turns": self.iterations,
            "tool_calls": self.tool_calls,
            "usage": ledger["usage"],
            "cost_usd": ledger["cost_usd"],
            "cost": format_cost(ledger["cost_usd"]),
            "models": ledger["models"],
            "events": counts,
            "recoveries": list(self.recoveries),
            "elapsed_s": round(self.elapsed_s, 6),
        }
