"""`Agent` (configuration) and `AgentRegistry` (the sessions of a process)."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentmw._validate import check_instance, check_int, check_methods, check_name
from agentmw.core.middleware import Middleware
from agentmw.core.stack import Stack, as_stack, get_default_stack
from agentmw.events import EventSink, RingBufferEventSink, SinkIsolation, UsageSink
from agentmw.pricing import PricingTable

if TYPE_CHECKING:
    from agentmw.core.handoff import Handoff
    from agentmw.core.session.session import Session

__all__ = ["Agent", "AgentRegistry", "default_registry"]


class AgentRegistry:
    """Thread-safe index of sessions by id, role and project.

    Running sessions are kept until they finish; finished ones are kept up to `max_finished`
    (oldest dropped first), so a long-lived process does not grow without bound.

    A finished session is returned as itself while anything else still holds it. Once nothing
    does, the registry keeps only its summary: a stand-in `Session` with the same id, agent,
    state, times, counters, usage ledger, event counts, `meta` and `recoveries`, and an empty
    `events` (the event buffer is freed; the agent's event sink still has the events it kept).
    """

    def __init__(self, max_finished: int = 1000) -> None:
        self.max_finished = check_int("max_finished", max_finished, minimum=0)
        self._lock = threading.Lock()
        self._active: dict[str, Session] = {}
        # A finished session: a weak reference to it and its summary stand-in.
        self._finished: OrderedDict[str, tuple[weakref.ref[Session], Session]] = OrderedDict()

    def register(self, session: Session) -> None:
        """Index a running session (a `Session` registers itself when it starts)."""
        with self._lock:
            self._active[session.id] = session

    def mark_finished(self, session: Session) -> None:
        """Move a session to the finished ones (a `Session` does this when it ends)."""
        entry = (weakref.ref(session), session._retired()) if self.max_finished else None
        with self._lock:
            self._active.pop(session.id, None)
            if entry is not None:
                self._finished[session.id] = entry
                while len(self._finished) > self.max_finished:
                    self._finished.popitem(last=False)

    @staticmethod
    def _resolve(entry: tuple[weakref.ref[Session], Session]) -> Session:
        """The finished session itself while it is alive, else its summary stand-in."""
        return entry[0]() or entry[1]

    def get(self, session_id: str) -> Session | None:
        """The session with this id, running or recently finished."""
        with self._lock:
            found = self._active.get(session_id)
            if found is not None:
                return found
            entry = self._finished.get(session_id)
            return None if entry is None else self._resolve(entry)

    def active(self) -> list[Session]:
        """Sessions not yet finished."""
        with self._lock:
            return list(self._active.values())

    def finished(self) -> list[Session]:
        """Recently finished sessions, oldest first."""
        with self._lock:
            return [self._resolve(entry) for entry in self._finished.values()]

    def _all(self) -> list[Session]:
        with self._lock:
            return [
                *self._active.values(),
                *(self._resolve(entry) for entry in self._finished.values()),
            ]

    def by_role(self, role: str) -> list[Session]:
        return [s for s in self._all() if s.agent.role == role]

    def by_project(self, project_id: str | int) -> list[Session]:
        return [s for s in self._all() if s.agent.project_id == project_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._active) + len(self._finished)

    def clear(self) -> None:
        with self._lock:
            self._active.clear()
            self._finished.clear()


_default_registry = AgentRegistry()


def default_registry() -> AgentRegistry:
    """The process-wide registry agents use unless given one."""
    return _default_registry


class Agent:
    """An agent's configuration: role, phase, project, stack and sinks.

    Args:
        role: the agent's role ("writer", "editor"...); also the name telemetry reports.
        phase: a free-form phase label carried by events.
        project_id: groups agents of one project (registry lookups, shared budgets).
        stack: the stack its sessions use; None means the process default stack.
        event_sink: where events go (default: a `RingBufferEventSink`).
        usage_sink: where per-call usage records go (default: none).
        registry: where sessions are indexed (default: the process registry).
        pricing: the price table for this agent's turns (default: the process default table).

    Attributes:
        sink_isolation: counts the failures of this agent's sinks across its sessions, so a
            failing sink is reported (`sink.failed`, one warning) once, not once per session.
    """

    def __init__(
        self,
        role: str,
        *,
        phase: str = "default",
        project_id: str | int | None = None,
        stack: Stack | Iterable[Middleware] | None = None,
        event_sink: EventSink | None = None,
        usage_sink: UsageSink | None = None,
        registry: AgentRegistry | None = None,
        pricing: PricingTable | None = None,
    ) -> None:
        self.role = check_name("role", role)
        self.phase = check_name("phase", phase)
        if project_id is not None and (
            isinstance(project_id, bool) or not isinstance(project_id, (str, int))
        ):
            raise TypeError(
                f"project_id must be a str, an int or None, got {type(project_id).__name__}"
            )
        if event_sink is not None:
            check_methods("event_sink", event_sink, ("emit",), "an EventSink")
        if usage_sink is not None:
            check_methods("usage_sink", usage_sink, ("record",), "a UsageSink")
        if registry is not None:
            check_instance("registry", registry, AgentRegistry, "an AgentRegistry")
        self.project_id = project_id
        self.stack: Stack | None = None if stack is None else as_stack("stack", stack)
        self.event_sink: EventSink = event_sink if event_sink is not None else RingBufferEventSink()
        self.usage_sink = usage_sink
        self.registry = registry if registry is not None else _default_registry
        if pricing is not None and not isinstance(pricing, PricingTable):
            raise TypeError(f"pricing must be a PricingTable, got {type(pricing).__name__}")
        self.pricing = pricing
        self.sink_isolation = SinkIsolation()

    def resolved_stack(self) -> Stack:
        """The stack this agent's sessions run: its own, or the process default."""
        return self.stack if self.stack is not None else get_default_stack()

    def with_stack(self, stack: Stack | Iterable[Middleware]) -> Agent:
        """A copy of this agent using `stack` (sinks and registry are shared)."""
        return Agent(
            self.role,
            phase=self.phase,
            project_id=self.project_id,
            stack=stack,
            event_sink=self.event_sink,
            usage_sink=self.usage_sink,
            registry=self.registry,
            pricing=self.pricing,
        )

    def session(self, thread_id: str | None = None, *, handoff: Handoff | None = None) -> Session:
        """A new session (enter it with `with` or `async with`)."""
        from agentmw.core.session.session import Session

        return Session(self, thread_id, handoff=handoff)

    def __repr__(self) -> str:
        return f"Agent(role={self.role!r}, phase={self.phase!r}, project_id={self.project_id!r})"
