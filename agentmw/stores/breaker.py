"""Circuit breaker state stores: the protocol and the in-memory default."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from agentmw.stores.circuit import (
    CLOSED,
    BreakerConfig,
    BreakerState,
    CircuitState,
    Outcome,
    Permit,
)

__all__ = ["BreakerStore", "InMemoryBreakerStore"]


@runtime_checkable
class BreakerStore(Protocol):
    """Where circuit state lives, keyed by (breaker name, key); `now` comes from the breaker.

    Each method is one atomic step of the state machine in `agentmw.stores.circuit.CircuitState`.
    Async twins exist so a networked store never blocks an event loop.
    """

    def acquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        """Ask to make a call; a refused permit carries `retry_after`."""
        ...

    def record(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        """Report a permitted call's outcome ("release": not counted, the permit goes back)."""
        ...

    def state(self, name: str, key: str, config: BreakerConfig, now: float) -> BreakerState:
        """The circuit's current state."""
        ...

    def reset(self, name: str, key: str | None = None) -> None:
        """Close one circuit, or every circuit of `name` when `key` is None."""
        ...

    async def aacquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        """Async twin of `acquire`."""
        ...

    async def arecord(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        """Async twin of `record`."""
        ...


class InMemoryBreakerStore:
    """Process-local circuit state; one short lock guards the state, never a call."""

    def __init__(self) -> None:
        self._circuits: dict[tuple[str, str], CircuitState] = {}
        self._lock = threading.Lock()

    @property
    def circuits(self) -> Mapping[tuple[str, str], CircuitState]:
        """The live circuits by (breaker name, key), for the layer's closed-circuit fast path.

        Read without the lock under the rules of `closed` and `settled`; never changed through
        this view (the mapping object is the store's for its whole life).
        """
        return self._circuits

    def _get(self, name: str, key: str) -> CircuitState:
        circuit = self._circuits.get((name, key))
        if circuit is None:
            circuit = self._circuits[(name, key)] = CircuitState()
        return circuit

    def acquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        circuit = self._circuits.get((name, key))
        if circuit is not None and circuit.state is CLOSED:
            # A closed circuit hands out its shared permit without the lock: racing an opening
            # thread only admits a call "just before" the open, and its late outcome is ignored
            # (the permit's generation is stale).
            return circuit.closed_permit
        with self._lock:
            circuit = self._circuits.get((name, key)) or self._get(name, key)
            return circuit.acquire(config, now)

    def closed(self, name: str, key: str) -> Permit | None:
        """The closed circuit's shared permit, or None (not closed, or not created yet).

        The layer's lock- and clock-free fast path (a closed circuit needs neither to admit).
        """
        circuit = self._circuits.get((name, key))
        if circuit is not None and circuit.state is CLOSED:
            return circuit.closed_permit
        return None

    def settled(self, name: str, key: str, permit: Permit) -> bool:
        """Whether a success with `permit` changes nothing: the circuit is still closed on
        that permit's generation with no failures counted (the layer then skips `record`).

        Read without the lock: a success that races a concurrent failure is ordered just before
        it, which `record` could have done too. Only for configurations without
        `failure_ratio` (whose window records every outcome).
        """
        circuit = self._circuits.get((name, key))
        return circuit is not None and permit is circuit.closed_permit and not circuit.failures

    def record(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        with self._lock:
            circuit = self._circuits.get((name, key)) or self._get(name, key)
            return circuit.record(config, now, permit, outcome)

    def state(self, name: str, key: str, config: BreakerConfig, now: float) -> BreakerState:
        with self._lock:
            circuit = self._circuits.get((name, key))
            return BreakerState.CLOSED if circuit is None else circuit.current(config, now)

    def reset(self, name: str, key: str | None = None) -> None:
        with self._lock:
            for pair in [p for p in self._circuits if p[0] == name and key in (None, p[1])]:
                del self._circuits[pair]

    async def aacquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        return self.acquire(name, key, config, now)

    async def arecord(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        return self.record(name, key, config, now, permit, outcome)
