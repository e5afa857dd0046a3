"""RateLimit's waiting lines: FIFO per key (`agentmw.middleware._lines`) in front of a limiter.

The decisions of a wait are one plan (`Lines._line`), run with the store's sync methods by
`wait_in_line` and with its async twins by `await_in_line`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from agentmw.core.loops import arun_plan, run_plan
from agentmw.errors import RateLimitedError
from agentmw.middleware._lines import Ticket, WaitingLines
from agentmw.stores.gcra import Demand, merge_demands

if TYPE_CHECKING:
    from agentmw.stores.limiter import LimiterStore

# Internal machinery of RateLimit; nothing here is public API.
__all__: list[str] = []


class Lines(WaitingLines):
    """Waiting lines per key in front of one limiter store."""

    def __init__(
        self, store: LimiterStore, clock: Callable[[], float], max_wait: float | None
    ) -> None:
        super().__init__()
        self.store, self.clock, self.max_wait = store, clock, max_wait

    # -- waiting: one plan (`_line`), a sync and an async driver ---------------------------
    def wait_in_line(
        self,
        key: str,
        demands: list[Demand],
        sleep: Callable[[float], Any],
        start: float | None = None,
    ) -> float:
        """Acquire `demands` under `key` in arrival order; returns the seconds waited.

        `start`: the caller already tried to acquire at that time (with nobody in line) and was
        refused, so the wait begins without another try.

        Raises:
            RateLimitedError: the wait would be longer than `max_wait` (raised before waiting).
        """
        store = self.store
        return run_plan(
            self._line(
                key, demands, store.acquire, store.wait_time, Ticket.wait, sleep, None, start
            )
        )

    async def await_in_line(
        self,
        key: str,
        demands: list[Demand],
        asleep: Callable[[float], Awaitable[Any]],
        start: float | None = None,
    ) -> float:
        """Async twin of `wait_in_line` (never holds a lock across an await)."""
        store, loop = self.store, asyncio.get_running_loop()
        plan = self._line(
            key, demands, store.aacquire, store.await_time, Ticket.await_, asleep, loop, start
        )
        return await arun_plan(plan)

    def _line(
        self,
        key: str,
        demands: list[Demand],
        acquire: Callable[..., Any],
        wait_time: Callable[..., Any],
        park: Callable[[Ticket], Any],
        sleep: Callable[[float], Any],
        loop: asyncio.AbstractEventLoop | None,
        tried: float | None = None,
    ) -> Generator[Any, Any, float]:
        """The decisions of one caller's wait (see `run_plan`): only the head of a line tries to
        acquire; the others are parked on their ticket until the head leaves."""
        clock, max_wait = self.clock, self.max_wait
        if tried is not None:
            start = tried
        else:
            start = clock()
            if not self.busy(key) and (yield acquire(key, demands, start)) == 0.0:
                return 0.0
        if max_wait is not None:
            # Everyone already in line goes first: the wait covers their demands too.
            wait = yield wait_time(key, merge_demands([*self.pending(key), demands]), start)
            if wait > max_wait:
                raise _too_long(key, wait)
        ticket = Ticket(demands, loop)
        self.join(key, ticket)
        try:
            while True:
                if not self.ahead(key, ticket):
                    yield park(ticket)
                    continue
                now = clock()
                wait = yield acquire(key, demands, now)
                if wait == 0.0:
                    return now - start
                if max_wait is not None and now + wait - start > max_wait:
                    raise _too_long(key, now + wait - start)
                yield sleep(wait)
        finally:
            self.leave(key, ticket)


def _too_long(key: str, wait: float) -> RateLimitedError:
    return RateLimitedError(
        wait, f"rate limit for key {key!r}: a wait of {wait:.3f}s exceeds max_wait"
    )
