"""The circuit breaker's pure state machine: no locks, no clock, no I/O (stores add those)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["BreakerState"]

Outcome = Literal["success", "failure", "release"]


class BreakerState(StrEnum):
    """The three states of a circuit."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Module constants: reading them is cheaper than enum class attribute lookups on the hot path.
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The thresholds that drive the state machine (validated by `CircuitBreaker`)."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    half_open_max_calls: int = 1
    failure_ratio: float | None = None
    minimum_calls: int = 10
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer to "may I call?".

    Attributes:
        allowed: the call may go ahead.
        probe: the call is a half-open probe (its outcome decides the circuit).
        generation: which open/half-open cycle the permit belongs to (late results of an older
            cycle are ignored).
        retry_after: when refused, seconds until a probe may be admitted.
        transition: the state entered while deciding ("half_open"), if any.
    """

    allowed: bool
    probe: bool = False
    generation: int = 0
    retry_after: float = 0.0
    transition: BreakerState | None = None


class CircuitState:
    """One circuit (one breaker name and key). Callers serialize access (a lock or a script)."""

    __slots__ = (
        "closed_permit",
        "failures",
        "generation",
        "issued",
        "opened_at",
        "outcomes",
        "state",
        "succeeded",
    )

    def __init__(self) -> None:
        self.state: BreakerState = CLOSED
        self.failures = 0  # consecutive counted failures while closed
        self.opened_at = 0.0
        self.generation = 0
        self.issued = 0  # probe permits handed out in this half-open cycle
        self.succeeded = 0
        self.outcomes: deque[tuple[float, bool]] = deque()  # (time, failed) for failure_ratio
        # Permits are immutable, so the closed state hands out one per generation: the hot path
        # allocates nothing.
        self.closed_permit = Permit(True)

    def current(self, config: BreakerConfig, now: float) -> BreakerState:
        """The state as callers see it at `now` (an expired OPEN reads as HALF_OPEN)."""
        if self.state is OPEN and now - self.opened_at >= config.recovery_timeout:
            return HALF_OPEN
        return self.state

    def acquire(self, config: BreakerConfig, now: float) -> Permit:
        transition = None
        if self.state is CLOSED:
            return self.closed_permit
        if self.state is OPEN:
            remaining = self.opened_at + config.recovery_timeout - now
            if remaining > 0:
                return Permit(False, generation=self.generation, retry_after=remaining)
            self.state = transition = HALF_OPEN
            self.issued = self.succeeded = 0
        if self.issued >= config.half_open_max_calls:
            return Permit(False, generation=self.generation, transition=transition)
        self.issued += 1
        return Permit(True, probe=True, generation=self.generation, transition=transition)

    def record(
        self, config: BreakerConfig, now: float, permit: Permit, outcome: Outcome
    ) -> BreakerState | None:
        """Apply one call's outcome; returns the state entered, if the circuit changed."""
        if permit is self.closed_permit and outcome == "success" and config.failure_ratio is None:
            # Identity implies the permit is of this generation, so the circuit is still closed.
            self.failures = 0
            return None
        if permit.generation != self.generation:
            return None  # a straggler from an earlier cycle says nothing about the present
        if permit.probe:
            if self.state is not HALF_OPEN:
                return None
            if outcome == "release":
                self.issued -= 1
                return None
            if outcome == "failure":
                return self._open(now)
            self.succeeded += 1
            if self.succeeded >= config.half_open_max_calls:
                self._close()
                return CLOSED
            return None
        if self.state is not CLOSED or outcome == "release":
            return None
        failed = outcome == "failure"
        self.failures = self.failures + 1 if failed else 0
        if config.failure_ratio is not None:
            self.outcomes.append((now, failed))
            while self.outcomes and self.outcomes[0][0] <= now - config.window:
                self.outcomes.popleft()
        if failed and self._should_open(config):
            return self._open(now)
        return None

    def _should_open(self, config: BreakerConfig) -> bool:
        if self.failures >= config.failure_threshold:
            return True
        if config.failure_ratio is None or len(self.outcomes) < config.minimum_calls:
            return False
        failed = sum(1 for _, f in self.outcomes if f)
        return failed >= config.failure_ratio * len(self.outcomes)

    def _open(self, now: float) -> BreakerState:
        self.state = OPEN
        self.opened_at = now
        self.generation += 1
        self.closed_permit = Permit(True, generation=self.generation)
        self.issued = self.succeeded = 0
        return OPEN

    def _close(self) -> None:
        self.state = CLOSED
        self.generation += 1
        self.closed_permit = Permit(True, generation=self.generation)
        self.failures = self.issued = self.succeeded = 0
        self.outcomes.clear()
