"""`Reservation`: what a `RateLimit` admitted, settled with the real usage afterwards."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agentmw.usage import Usage

if TYPE_CHECKING:
    from agentmw.middleware.rate_limit.layer import RateLimit
    from agentmw.stores.gcra import Demand


# One lock for every reservation: settling is rare and instant, and a lock per reservation
# would cost an allocation on every admitted call.
_SETTLE_LOCK = threading.Lock()


class Reservation:
    """Requests and tokens admitted under one key; settle it once with `reconcile` or `refund`.

    Attributes:
        key: the limiter key.
        usage: the usage reserved (the estimate).
        waited: seconds the caller waited for it.
        settled: True once reconciled or refunded.
    """

    __slots__ = ("_limiter", "key", "settled", "usage", "waited")

    def __init__(self, limiter: RateLimit, key: str, usage: Usage, waited: float) -> None:
        self._limiter = limiter
        self.key = key
        self.usage = usage
        self.waited = waited
        self.settled = False

    def _settle(self, actual: Usage | int | None) -> list[Demand] | None:
        # Only the first settlement counts: a reconcile then a refund must not refund twice.
        with _SETTLE_LOCK:
            if self.settled:
                return None
            self.settled = True
        return self._limiter._deltas(self.usage, actual)

    def reconcile(self, actual: Usage | int) -> None:
        """Replace the estimate by the real usage: refund the surplus or charge the excess."""
        deltas = self._settle(actual)
        if deltas:
            self._limiter.store.adjust(self.key, deltas, self._limiter.clock())

    async def areconcile(self, actual: Usage | int) -> None:
        """Async twin of `reconcile`."""
        deltas = self._settle(actual)
        if deltas:
            await self._limiter.store.aadjust(self.key, deltas, self._limiter.clock())

    def refund(self) -> None:
        """Give the reserved tokens back (the call failed or was cancelled); the request stays."""
        deltas = self._settle(None)
        if deltas:
            self._limiter.store.adjust(self.key, deltas, self._limiter.clock())

    async def arefund(self) -> None:
        """Async twin of `refund`."""
        deltas = self._settle(None)
        if deltas:
            await self._limiter.store.aadjust(self.key, deltas, self._limiter.clock())

    def __repr__(self) -> str:
        return f"Reservation(key={self.key!r}, usage={self.usage!r}, settled={self.settled})"
