"""The session lifecycle state machine."""

from __future__ import annotations

from enum import StrEnum

from agentmw.errors import InvalidTransitionError

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
