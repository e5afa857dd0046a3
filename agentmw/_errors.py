"""The error hierarchy: one base, and a marker for control flow that retry never touches."""

from __future__ import annotations

from typing import Any


class AgentMWError(Exception):
    """Base class of every error agentmw raises."""


class ControlFlowError(AgentMWError):
    """Marker base for errors that steer the loop rather than report a broken call.

    Budget exceeded, permission denied, guardrail violation, policy violation, an open circuit,
    max iterations, replay divergence: retry never retries these and circuit breakers never count
    them.
    """


class InvalidTransitionError(AgentMWError):
    """A lifecycle transition that the state machine does not allow."""

    def __init__(self, current: Any, target: Any) -> None:
        self.current = current
        self.target = target
        super().__init__(f"cannot move a session from {current.value} to {target.value}")


class SessionStateError(AgentMWError):
    """A turn or tool call on a session that is not running."""

    def __init__(self, session_id: str, state: Any, message: str | None = None) -> None:
        self.session_id = session_id
        self.state = state
        super().__init__(message or f"session {session_id} is {state.value}")


class SessionClosedError(SessionStateError, ControlFlowError):
    """A turn or tool call on a session that has already finished."""

    def __init__(self, session_id: str, state: Any) -> None:
        super().__init__(
            session_id, state, f"session {session_id} is {state.value}; open a new session"
        )


class TurnTimeoutError(AgentMWError, TimeoutError):
    """One attempt ran past its deadline (raised by the `Timeout` layer)."""

    def __init__(self, seconds: float, name: str | None = None) -> None:
        self.seconds = seconds
        self.name = name
        what = f"{name!r}" if name else "call"
        super().__init__(f"{what} did not finish within {seconds:g}s")


class BudgetExceededError(ControlFlowError):
    """A call was refused because the budget is spent (or the call would overspend it)."""

    def __init__(self, budget_usd: Any, spent_usd: Any, *, estimate_usd: Any = None) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        if estimate_usd is None:
            message = f"budget of ${budget_usd} is spent (${spent_usd} so far)"
        else:
            message = (
                f"a call estimated at ${estimate_usd} would overspend the budget of ${budget_usd}"
                f" (${spent_usd} spent so far)"
            )
        super().__init__(message)


class RateLimitedError(ControlFlowError):
    """A rate-limit reservation could not be granted in time.

    Attributes:
        retry_after: seconds until the reservation could be granted, or None when it never can
            (a request larger than the burst).
    """

    def __init__(self, retry_after: float | None, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(
            message or f"rate limit: the reservation needs a wait of {retry_after:.3f}s"
        )


class CircuitOpenError(ControlFlowError):
    """A circuit breaker refused the call without making it.

    Attributes:
        name: the breaker's name.
        key: the state key (usually the model, or the tool name).
        retry_after: seconds until the breaker lets a probe through (0 when probes are busy).
    """

    def __init__(self, name: str, key: str, retry_after: float) -> None:
        self.name = name
        self.key = key
        self.retry_after = retry_after
        super().__init__(f"circuit {name!r} is open for {key!r}; retry after {retry_after:.3g}s")
