"""First-come-first-served waiting lines per key, shared by threads and event loops.

Only the head of a line may try to acquire; the others sleep on their own ticket (a
`threading.Event` for threads, a future for tasks) until the head leaves. No lock is ever held
while a caller waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

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
    """Waiting lines per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, deque[Ticket]] = {}

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


def _too_long(key: str, wait: float) -> RateLimitedError:
    return RateLimitedError(
        wait, f"rate limit for key {key!r}: a wait of {wait:.3f}s exceeds max_wait"
    )


# The steps of a waiting line, shared by both drivers: each step is one store call or one wait.
_ACQUIRE, _WAIT_TIME, _PARK, _SLEEP = "acquire", "wait_time", "park", "sleep"
Step = tuple[str, Any]


def _line(
    lines: Lines,
    key: str,
    demands: list[Demand],
    clock: Callable[[], float],
    max_wait: float | None,
    loop: asyncio.AbstractEventLoop | None,
) -> Generator[Step, Any, float]:
    """The decisions of one caller's wait; the driver runs each step and sends its result back.

    Steps: `(_ACQUIRE, now)` -> seconds to wait (0.0: admitted); `(_WAIT_TIME, (demands, now))`
    -> seconds; `(_PARK, ticket)` -> wait until woken; `(_SLEEP, seconds)`. Returns the seconds
    waited. Closing it (the driver failed or was cancelled) leaves the line.
    """
    start = clock()
    if not lines.busy(key) and (yield _ACQUIRE, start) == 0.0:
        return 0.0
    if max_wait is not None:
        # Everyone already in line goes first: the wait covers their demands too.
        total = merge_demands([*lines.pending(key), demands])
        wait = yield _WAIT_TIME, (total, start)
        if wait > max_wait:
            raise _too_long(key, wait)
    ticket = Ticket(demands, loop)
    lines.join(key, ticket)
    try:
        while True:
            if not lines.ahead(key, ticket):
                yield _PARK, ticket
                continue
            now = clock()
            wait = yield _ACQUIRE, now
            if wait == 0.0:
                return now - start
            if max_wait is not None and now + wait - start > max_wait:
                raise _too_long(key, now + wait - start)
            yield _SLEEP, wait
    finally:
        lines.leave(key, ticket)


def wait_in_line(
    lines: Lines,
    store: LimiterStore,
    key: str,
    demands: list[Demand],
    clock: Callable[[], float],
    sleep: Callable[[float], Any],
    max_wait: float | None,
) -> float:
    """Acquire `demands` under `key` in arrival order; returns the seconds waited.

    Raises:
        RateLimitedError: the wait would be longer than `max_wait` (raised before waiting).
    """
    plan = _line(lines, key, demands, clock, max_wait, None)
    try:
        reply: Any = None
        while True:
            step, arg = plan.send(reply)
            if step is _ACQUIRE:
                reply = store.acquire(key, demands, arg)
            elif step is _WAIT_TIME:
                reply = store.wait_time(key, *arg)
            elif step is _PARK:
                reply = arg.wait()
            else:
                reply = sleep(arg)
    except StopIteration as done:
        return float(done.value)
    finally:
        plan.close()


async def await_in_line(
    lines: Lines,
    store: LimiterStore,
    key: str,
    demands: list[Demand],
    clock: Callable[[], float],
    asleep: Callable[[float], Awaitable[Any]],
    max_wait: float | None,
) -> float:
    """Async twin of `wait_in_line` (never holds a lock across an await)."""
    plan = _line(lines, key, demands, clock, max_wait, asyncio.get_running_loop())
    try:
        reply: Any = None
        while True:
            step, arg = plan.send(reply)
            if step is _ACQUIRE:
                reply = await store.aacquire(key, demands, arg)
            elif step is _WAIT_TIME:
                reply = await store.await_time(key, *arg)
            elif step is _PARK:
                reply = await arg.await_()
            else:
                reply = await asleep(arg)
    except StopIteration as done:
        return float(done.value)
    finally:
        plan.close()
