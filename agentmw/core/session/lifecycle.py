"""The session lifecycle: the state machine and the `Lifecycle` object that runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from agentmw.errors import InvalidTransitionError

if TYPE_CHECKING:
    from agentmw.core.session.event_log import EventLog

__all__ = ["AgentState"]


class AgentState(StrEnum):
    """Where a session is in its life. COMPLETED, FAILED and CANCELLED are terminal."""

    INITIALIZING = "initializing"
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({AgentState.COMPLETED, AgentState.FAILED, AgentState.CANCELLED})

TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    AgentState.INITIALIZING: frozenset(
        {AgentState.RUNNING, AgentState.FAILED, AgentState.CANCELLED}
    ),
    AgentState.RUNNING: frozenset(
        {
            AgentState.WAITING_FOR_INPUT,
            AgentState.COMPLETED,
            AgentState.FAILED,
            AgentState.CANCELLED,
        }
    ),
    AgentState.WAITING_FOR_INPUT: frozenset(
        {AgentState.RUNNING, AgentState.FAILED, AgentState.CANCELLED}
    ),
    AgentState.COMPLETED: frozenset(),
    AgentState.FAILED: frozenset(),
    AgentState.CANCELLED: frozenset(),
}


def check_transition(current: AgentState, target: AgentState) -> None:
    """Raise `InvalidTransitionError` unless `current -> target` is allowed."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransitionError(current, target)


_FINISH_EVENTS = {
    AgentState.COMPLETED: "agent.completed",
    AgentState.FAILED: "agent.failed",
    AgentState.CANCELLED: "agent.cancelled",
}


class Lifecycle:
    """One session's state machine, its start and end times, and what finishing does.

    Args:
        log: where the `agent.completed` / `agent.failed` / `agent.cancelled` event goes.
        on_finished: called once, when the session reaches a terminal state.
        lock: the lock guarding the state (default: a new one; a session shares its lock).

    Attributes:
        state: the current `AgentState` (read it freely; change it with the methods).
        started: `time.monotonic()` at the start (0.0 before it).
        ended: `time.monotonic()` at the end (None before it).
        started_at: the UTC start time (None before it).
    """

    __slots__ = ("_lock", "_log", "_on_finished", "ended", "started", "started_at", "state")

    def __init__(
        self,
        log: EventLog,
        on_finished: Callable[[], None],
        lock: threading.Lock | None = None,
    ) -> None:
        self.state = AgentState.INITIALIZING
        self.started = 0.0
        self.ended: float | None = None
        self.started_at: datetime | None = None
        self._log = log
        self._on_finished = on_finished
        self._lock = threading.Lock() if lock is None else lock

    def start(self) -> None:
        """INITIALIZING -> RUNNING and record the start times.

        Raises:
            InvalidTransitionError: the session already started (a session runs once).
        """
        with self._lock:
            check_transition(self.state, AgentState.RUNNING)
            self.state = AgentState.RUNNING
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)

    def transition(self, target: AgentState) -> bool:
        """Move to `target`; False if already there (raises `InvalidTransitionError` if barred)."""
        with self._lock:
            if self.state is target:
                return False
            check_transition(self.state, target)
            self.state = target
            if target.terminal:
                self.ended = time.monotonic()
        return True

    def finish(self, target: AgentState, detail: str | None = None) -> None:
        """End in the terminal `target`: emit its event and call `on_finished` (once)."""
        if self.transition(target):
            self._log.emit(_FINISH_EVENTS[target], detail=detail)
            self._on_finished()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the start (0 before it), up to the end once ended."""
        if not self.started:
            return 0.0
        return (self.ended or time.monotonic()) - self.started
