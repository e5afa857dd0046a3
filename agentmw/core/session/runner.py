"""`CallRunner`: a session's call path: run a `Call` through its chain and account for it.

The decorators use `run_chain`, `arun_chain`, `run_stream` and `arun_stream`; the imperative
twins `run_turn`, `arun_turn`, `run_tool` and `arun_tool` build the call and use them too.
`Session` exposes these methods as its own. What a call checks, records and emits is written
once (`_begin`, `_completed`, `_failed`, `prepare_call`); the twins differ only in the await.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_optional_name
from agentmw.classify import exception_type, failure_class
from agentmw.core.call import Call
from agentmw.core.middleware import aclose
from agentmw.core.session.imperative import Chain, UsageOption, prepare_call
from agentmw.core.session.lifecycle import AgentState
from agentmw.errors import ControlFlowError, SessionClosedError, SessionStateError
from agentmw.events import _EMPTY, Event, UsageRecord
from agentmw.pricing import call_cost
from agentmw.usage import ZERO_USAGE, Usage

if TYPE_CHECKING:
    from agentmw.core.session.event_log import EventLog
    from agentmw.core.session.lifecycle import Lifecycle
    from agentmw.core.session.session import Session

__all__: list[str] = []  # `Session` is the public face of this module

StreamChain = Callable[[Call], Iterator[Any]]
AsyncStreamChain = Callable[[Call], AsyncIterator[Any]]


def _tool_data(call: Call) -> Any:
    """A tool event's data: the provider's tool call id, when the call has one."""
    call_id = call.tool_call_id
    return _EMPTY if call_id is None else {"tool_call_id": call_id}


# The per-call events are kept as compact records (`agentmw.events.materialize`), timed with
# `time.time()`; the `Event` is built when something reads it.
_time = time.time


class CallRunner:
    """Runs the calls of one session (see the module docstring).

    Numbers each call (`Call.step`), counts turns and tool calls, records a turn's usage and
    cost in the ledger and the agent's usage sink, and emits `turn.started` / `turn.completed`
    / `turn.failed` (`tool.called` / `tool.completed` / `tool.failed` for tools).

    Args:
        session: the session the calls belong to; its `stack` runs the imperative calls.
        log: where the call events go.
        lifecycle: whose state says whether a call may run.

    Attributes:
        iterations: turns run so far (replayed turns included).
        tool_calls: tool calls run so far.
        tool_counts: tool calls run so far, per tool name.
    """

    __slots__ = (
        "_agent",
        "_head",
        "_ledger",
        "_lifecycle",
        "_lock",
        "_log",
        "_session",
        "_session_id",
        "_steps",
        "iterations",
        "tool_calls",
        "tool_counts",
    )

    def __init__(self, session: Session, log: EventLog, lifecycle: Lifecycle) -> None:
        self._session = session
        self._session_id = session.id
        self._agent = session.agent
        self._ledger = session.ledger
        self._lifecycle = lifecycle
        self._log = log
        self._steps = itertools.count(1)
        self._lock = session.ledger.lock  # one lock for the counters and the usage totals
        # The session's part of every call record (`agentmw.events.materialize`), shared.
        self._head = (session.id, session.agent.role, session.agent.project_id)
        self.iterations = 0
        self.tool_calls = 0
        self.tool_counts: dict[str, int] = {}

    # -- what every call checks, records and emits -----------------------------------------
    def _begin(self, call: Call) -> None:
        state = self._lifecycle.state
        if state is not AgentState.RUNNING:
            sid = self._session_id
            if state.terminal:
                raise SessionClosedError(sid, state)
            raise SessionStateError(
                sid, state, f"session {sid} is {state.value}; calls need a running session"
            )
        step = call.step = next(self._steps)
        agent = self._agent
        head = self._head
        if head[1] is not agent.role or head[2] is not agent.project_id:
            head = self._head = (self._session_id, agent.role, agent.project_id)
        at = call.started_at = _time()
        if call.kind == "turn":
            self._log.record(("turn.started", head, agent.phase, step, call.model, at))
        else:
            data = _tool_data(call)
            self._log.record(("tool.called", head, agent.phase, step, call.name, data, at))

    def record_event(self, name: str, data: Mapping[str, Any] | None) -> None:
        """Keep a session event with no call (`agent.started`) as a compact record."""
        agent = self._agent
        head = self._head
        if head[1] is not agent.role or head[2] is not agent.project_id:
            head = self._head = (self._session_id, agent.role, agent.project_id)
        data = _EMPTY if data is None else data
        self._log.record((name, head, agent.phase, None, None, data, _time()))

    def _completed(self, call: Call) -> None:
        agent = self._agent
        if call.kind == "turn":
            usage = call.usage or ZERO_USAGE
            cost = call.cost_usd  # the chain's Budget priced it already, as a rule
            if cost is None:
                cost = call_cost(call)
            lock = self._lock  # shared with the ledger: one acquisition for both
            lock.acquire()  # acquire/release: `with` makes two bound methods a call
            try:
                self.iterations += 1
                self._ledger.record_locked(call.model, usage, cost)
            finally:
                lock.release()
            sink = agent.usage_sink
            if sink is not None:
                spent = UsageRecord(
                    self._session_id, agent.role, call.model, call.kind, call.name, call.step,
                    usage, cost, agent.project_id,
                )  # fmt: skip
                self._log.deliver(sink, sink.record, spent)
            # The data stays `usage, attempts, cost` until the event is read (`materialize`);
            # the cost as the rates that gave it, when `call_cost` priced the call.
            priced = call.priced
            kept = priced[0] if priced is not None and priced[1] is cost else cost
            self._log.record_end((
                "turn.completed", self._head, agent.phase, call.step, call.model, usage,
                call.attempt, kept, call.started_at, _time(),
            ), "turn.started")  # fmt: skip
        else:
            counts = self.tool_counts
            lock = self._lock  # acquire/release: `with` makes two bound methods a call
            lock.acquire()
            try:
                self.tool_calls += 1
                counts[call.name] = counts.get(call.name, 0) + 1
            finally:
                lock.release()
            self._log.record_end((
                "tool.completed", self._head, agent.phase, call.step, call.name,
                _tool_data(call), call.started_at, _time(),
            ), "tool.called")  # fmt: skip

    def _failed(self, call: Call, exc: BaseException) -> None:
        turn = call.kind == "turn"
        if not isinstance(exc, ControlFlowError):
            with self._lock:
                if turn:
                    self.iterations += 1
                else:
                    self.tool_calls += 1
                    counts = self.tool_counts
                    counts[call.name] = counts.get(call.name, 0) + 1
        agent = self._agent
        self._log.publish(
            Event(
                "turn.failed" if turn else "tool.failed",
                self._session_id,
                agent.role,
                agent.phase,
                agent.project_id,
                call.step,
                call.model if turn else None,
                None if turn else call.name,
                failure_class(exc, call.kind),
                exception_type(exc),
                _EMPTY if turn else _tool_data(call),
            )
        )

    def _stream_ended(self, call: Call, exc: BaseException) -> None:
        # A consumer that stopped early (GeneratorExit) got what it asked for: a success.
        if isinstance(exc, GeneratorExit):
            self._completed(call)
        else:
            self._failed(call, exc)

    # -- the call path (decorators and the imperative twins) -------------------------------
    def run_chain(self, call: Call, chain: Chain) -> Any:
        """Run `call` through `chain` (a compiled sync chain) and account for it."""
        self._begin(call)
        try:
            result = chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result

    async def arun_chain(self, call: Call, chain: Chain) -> Any:
        """Async twin of `run_chain`."""
        self._begin(call)
        try:
            result = await chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result

    def run_stream(self, call: Call, chain: StreamChain) -> Iterator[Any]:
        """Stream `call` through `chain`; it is accounted for when the stream ends."""
        self._begin(call)
        try:
            yield from chain(call)
        except BaseException as exc:
            self._stream_ended(call, exc)
            raise
        self._completed(call)

    async def arun_stream(self, call: Call, chain: AsyncStreamChain) -> AsyncIterator[Any]:
        """Async twin of `run_stream`."""
        self._begin(call)
        agen = chain(call)
        try:
            try:
                async for chunk in agen:
                    yield chunk
            finally:  # what `yield from` does for `run_stream`: close the chain, then account
                await aclose(agen)
        except BaseException as exc:
            self._stream_ended(call, exc)
            raise
        self._completed(call)

    # -- imperative twins (their checks and `Call`: `prepare_call`) -------------------------
    def run_turn(
        self,
        /,
        fn: Callable[..., Any],
        *args: Any,
        model: str | None = None,
        usage: UsageOption = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Usage]:
        """Run one model turn through the session's stack; returns (result, usage).

        Args:
            fn: the model call, a plain function (decorate generator functions instead).
            *args: positional arguments for `fn`.
            model: the model name the layers see (breakers, pricing, fallback).
            usage: the turn's `Usage`, or a function result -> `Usage`; default: built-in
                extraction (a `Usage` result, or a `usage` field).
            timeout: seconds per attempt (an innermost `Timeout` layer).
            **kwargs: keyword arguments for `fn`.

        Raises:
            SessionClosedError: the session has ended.
            TypeError: `fn` is async (use `arun_turn`), a generator function or not callable.
        """
        call, chain = prepare_call(
            self._session, "turn", None, fn, args, kwargs, model, usage, timeout, "sync"
        )
        self._begin(call)  # `run_chain` inline: one frame less on the imperative path
        try:
            result = chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result, call.usage or ZERO_USAGE

    async def arun_turn(
        self,
        /,
        fn: Callable[..., Any],
        *args: Any,
        model: str | None = None,
        usage: UsageOption = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the contract: same options as run_turn)
        **kwargs: Any,
    ) -> tuple[Any, Usage]:
        """Async twin of `run_turn`: `fn` may be async or return an awaitable."""
        call, chain = prepare_call(
            self._session, "turn", None, fn, args, kwargs, model, usage, timeout, "async"
        )
        self._begin(call)  # `arun_chain` inline: one coroutine less on the imperative path
        try:
            result = await chain(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._completed(call)
        return result, call.usage or ZERO_USAGE

    def run_tool(
        self,
        /,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run one tool call named `name` through the session's stack; returns its result.

        Args:
            name: the tool's name (permissions match on it).
            fn: the tool, a plain function.
            *args: positional arguments for `fn`.
            tool_call_id: the provider's id of the tool call (`gen_ai.tool.call.id`, the tool
                events' data); never passed to `fn`.
            **kwargs: keyword arguments for `fn`.

        Raises:
            SessionClosedError: the session has ended.
            TypeError: `fn` is async (use `arun_tool`), a generator function or not callable.
            ValueError: `name` is blank.
        """
        call, chain = prepare_call(
            self._session, "tool", name, fn, args, kwargs, None, None, None, "sync"
        )
        call.tool_call_id = check_optional_name("tool_call_id", tool_call_id)
        return self.run_chain(call, chain)

    async def arun_tool(
        self,
        /,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async twin of `run_tool`: `fn` may be async or return an awaitable."""
        call, chain = prepare_call(
            self._session, "tool", name, fn, args, kwargs, None, None, None, "async"
        )
        call.tool_call_id = check_optional_name("tool_call_id", tool_call_id)
        return await self.arun_chain(call, chain)
