"""First-come-first-served waiting lines per key, shared by threads and event loops.

Only the head of a line may try to acquire; the others sleep on their own ticket (a
`threading.Event` for threads, a future for tasks) until the head leaves. No lock is ever held
while a caller waits. The decisions of a wait are one plan (`Lines._line`), run with the store's
sync methods by `wait_in_line` and with its async twins by `await_in_line`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from agentmw.core.loops import arun_plan, run_plan
from agentmw.errors import RateLimitedError
from agentmw.stores.gcra import Demand, merge_demands

if TYPE_CHECKING:
    from agentmw.stores.limiter import LimiterStore

# Internal machinery of RateLimit; nothing here is public API.
__all__: list[str] = []


class Ticket:
    """One caller's place in a line."""

    __slots__ = ("demands", "event", "future", "loop")

    def __init__(self, demands: Any = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.demands = demands
        self.loop = loop
        self.event: threading.Event | None = None if loop is not None else threading.Event()
        self.future: asyncio.Future[None] | None = (
            loop.create_future() if loop is not None else None
        )

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
            return
        future, loop = self.future, self.loop
        if future is None or loop is None:
            return

        def _set() -> None:
            if not future.done():
                future.set_result(None)

        # A closed loop raises RuntimeError: nobody is waiting on that ticket any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set)

    def wait(self) -> None:
        """Block the thread until woken (then re-check: wake-ups are hints, not grants)."""
        assert self.event is not None
        self.event.wait()
        self.event.clear()

    async def await_(self) -> None:
        """Await until woken (async twin of `wait`)."""
        assert self.future is not None
        assert self.loop is not None
        await self.future
        self.future = self.loop.create_future()


class Lines:
    """Waiting lines per key in front of one limiter store."""

    def __init__(
        self, store: LimiterStore, clock: Callable[[], float], max_wait: float | None
    ) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, deque[Ticket]] = {}
        self.store, self.clock, self.max_wait = store, clock, max_wait

    def busy(self, key: str) -> bool:
        """True when someone is waiting under `key`."""
        return bool(self._lines.get(key))

    def pending(self, key: str) -> list[Any]:
        """The `demands` of every ticket waiting under `key`, in line order."""
        with self._lock:
            return [t.demands for t in self._lines.get(key, ())]

    def join(self, key: str, ticket: Ticket) -> None:
        with self._lock:
            self._lines.setdefault(key, deque()).append(ticket)

    def ahead(self, key: str, ticket: Ticket) -> bool:
        """True when `ticket` heads its line."""
        with self._lock:
            line = self._lines.get(key)
            return bool(line) and line[0] is ticket  # type: ignore[index]

    def leave(self, key: str, ticket: Ticket) -> None:
        """Remove `ticket` (served, cancelled or failed) and wake the new head."""
        with self._lock:
            line = self._lines.get(key)
            if not line:
                return
            was_head = line[0] is ticket
            try:
                line.remove(ticket)
            except ValueError:
                return
            if not line:
                del self._lines[key]
                return
            head = line[0] if was_head else None
        if head is not None:
            head.wake()

    # -- waiting: one plan (`_line`), a sync and an async driver ---------------------------
    def wait_in_line(self, key: str, demands: list[Demand], sleep: Callable[[float], Any]) -> float:
        """Acquire `demands` under `key` in arrival order; returns the seconds waited.

        Raises:
            RateLimitedError: the wait would be longer than `max_wait` (raised before waiting).
        """
        store = self.store
        return run_plan(
            self._line(key, demands, store.acquire, store.wait_time, Ticket.wait, sleep, None)
        )

    async def await_in_line(
        self, key: str, demands: list[Demand], asleep: Callable[[float], Awaitable[Any]]
    ) -> float:
        """Async twin of `wait_in_line` (never holds a lock across an await)."""
        store, loop = self.store, asyncio.get_running_loop()
        plan = self._line(
            key, demands, store.aacquire, store.await_time, Ticket.await_, asleep, loop
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
    ) -> Generator[Any, Any, float]:
        """The decisions of one caller's wait (see `run_plan`): only the head of a line tries to
        acquire; the others are parked on their ticket until the head leaves."""
        clock, max_wait = self.clock, self.max_wait
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
