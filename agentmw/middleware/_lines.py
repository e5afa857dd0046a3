"""First-come-first-served waiting lines per key, shared by threads and event loops.

Only the head of a line may try to take what it waits for; the others sleep on their own
ticket (a `threading.Event` for threads, a future for tasks) until the head leaves. No lock is
ever held while a caller waits. `RateLimit` (its GCRA plan in `rate_limit/fifo.py`) and
`Concurrency` each write their wait as one plan over these lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import Any

# Internal machinery of the layers that wait; nothing here is public API.
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

    def wait(self, at_most: float | None = None) -> None:
        """Block the thread until woken or `at_most` seconds pass (then re-check: wake-ups are
        hints, not grants; the flag is cleared before the caller re-checks, so none is lost)."""
        assert self.event is not None
        self.event.wait(at_most)
        self.event.clear()

    async def await_(self, at_most: float | None = None) -> None:
        """Await until woken or `at_most` seconds pass (async twin of `wait`)."""
        assert self.future is not None
        assert self.loop is not None
        if at_most is None:
            await self.future
        else:
            # `shield`: running out of time must not cancel the future a waker may set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at_most):
                    await asyncio.shield(self.future)
        self.future = self.loop.create_future()


class WaitingLines:
    """Waiting lines per key: who is in line, who heads it, and waking the next head."""

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

    def wake_head(self, key: str) -> None:
        """Wake whoever heads the line of `key` (something it waits for may be free now)."""
        if not self._lines.get(key):
            return
        with self._lock:
            line = self._lines.get(key)
            head = line[0] if line else None
        if head is not None:
            head.wake()

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
