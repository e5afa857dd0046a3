"""Limiter stores: where rate-limit state lives (in memory by default; Redis for a fleet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentmw.stores.gcra import GCRA, Demand


@runtime_checkable
class LimiterStore(Protocol):
    """GCRA state per key and dimension, with sync and async twins.

    `acquire` admits all demands or none and returns 0.0 (admitted) or the seconds to wait;
    `adjust` charges or refunds admitted units; `cooldown` blocks a key until a time. Times come
    from the limiter's clock.
    """

    def acquire(self, key: str, demands: Sequence[Demand], now: float) -> float: ...

    def wait_time(self, key: str, demands: Sequence[Demand], now: float) -> float: ...

    def adjust(self, key: str, demands: Sequence[Demand], now: float) -> None: ...

    def cooldown(self, key: str, until: float) -> None: ...

    async def aacquire(self, key: str, demands: Sequence[Demand], now: float) -> float: ...

    async def await_time(self, key: str, demands: Sequence[Demand], now: float) -> float: ...

    async def aadjust(self, key: str, demands: Sequence[Demand], now: float) -> None: ...

    async def acooldown(self, key: str, until: float) -> None: ...


class InMemoryLimiterStore(GCRA):
    """The default store: a process-local `GCRA` (its async twins never block)."""

    async def aacquire(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Async twin of `acquire`."""
        return self.acquire(key, demands, now)

    async def await_time(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Async twin of `wait_time`."""
        return self.wait_time(key, demands, now)

    async def aadjust(self, key: str, demands: Sequence[Demand], now: float) -> None:
        """Async twin of `adjust`."""
        self.adjust(key, demands, now)

    async def acooldown(self, key: str, until: float) -> None:
        """Async twin of `cooldown`."""
        self.cooldown(key, until)
