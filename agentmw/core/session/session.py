"""`Session`: one run of an agent, with its lifecycle, usage ledger and events."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from contextvars import Token
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentmw import events as _events
from agentmw.classify import exception_type
from agentmw.core.context import _current
from agentmw.core.handoff import Handoff
from agentmw.core.session.human_input import HumanInput
from agentmw.core.session.ledger import UsageTracker
from agentmw.core.session.lifecycle import AgentState, check_transition
from agentmw.core.session.runner import CallRunner
from agentmw.core.stack import Stack
from agentmw.events import Event, has_listeners, notify_listeners
from agentmw.pricing import format_cost
from agentmw.usage import Usage

if TYPE_CHECKING:
    from agentmw.core.agent import Agent
    from agentmw.quality import GateOutcome, QualityGate

__all__ = ["Session"]


EVENT_CAPACITY = 1000
_ZERO = Decimal(0)


class Session(CallRunner, HumanInput):
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
        from agentmw.quality import evaluate_gate

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
