"""`Concurrency`: at most N calls in flight per key, FIFO waiting, leases that expire on Redis."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from agentmw._validate import (
    check_callable,
    check_int,
    check_name,
    check_optional_number,
    check_protocol,
)
from agentmw.core.call import Call, new_call
from agentmw.core.context import current_session
from agentmw.core.loops import arun_plan, run_plan
from agentmw.core.middleware import Middleware
from agentmw.errors import ConcurrencyLimitError
from agentmw.middleware._lines import Ticket, WaitingLines
from agentmw.stores.concurrency import (
    ConcurrencyStore,
    InMemoryConcurrencyStore,
    akeep_alive,
    keep_alive,
    new_lease,
)

__all__ = ["Concurrency"]

_SLOT = "agentmw.concurrency.slot"  # + the layer's id: the attempt's `_Held`
_FIRST_POLL = 0.005  # seconds: a waiter polling a shared store asks again after this, doubling
Park = Callable[[Ticket, "float | None"], Any]


@dataclass(slots=True)
class _Held:
    """A slot one attempt holds, and how to stop renewing its lease."""

    key: str
    lease: str
    stop: Callable[[], Any] | None


class Concurrency(Middleware):
    """Caps the calls in flight per key; the ones over the cap wait in line for a free slot.

    An attempt takes a slot before it runs and gives it back when it ends: on success, on
    failure, on cancellation, and for a stream when it ends or its consumer stops early. It sits
    below Retry, so each attempt takes a slot of its own. Callers of one process wait first come,
    first served (threads and tasks alike); a caller cancelled while waiting leaves the line.
    With a shared store (`RedisConcurrencyStore`) the cap holds across processes: waiters poll
    with backoff, and a holder renews its lease in the background while its call runs. The
    async paths only await the store's `a*` twins; no lock is held across an await or a call.

    Events: `concurrency.waited` (key, seconds) when a call had to wait, `concurrency.refused`
    (key, limit, waited, reason) before `ConcurrencyLimitError`, `concurrency.lease_lost` (key)
    when a running call's lease expired before it could be renewed.

    Args:
        max_in_flight: the most calls in flight per key.
        key: a fixed key, or call -> key (default: the model, else the call's name).
        max_wait: the longest wait for a slot in seconds, then `ConcurrencyLimitError`
            (0: refuse at once when full; None, the default: wait as long as it takes).
        store: where the slots are counted (default: in memory, per layer).
        name: the layer's name in its stack.
        kinds: the call kinds it applies to (default: model turns).
    """

    order_role = "concurrency"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        max_in_flight: int,
        *,
        key: str | Callable[[Call], str] | None = None,
        max_wait: float | None = None,
        store: ConcurrencyStore | None = None,
        name: str | None = None,
        kinds: Any = "turn",
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.max_in_flight = check_int("max_in_flight", max_in_flight, minimum=1)
        if isinstance(key, str):
            check_name("key", key)
        elif key is not None:
            check_callable("key", key, "a string, a callable call -> str, or None")
        self.key = key
        self.max_wait = check_optional_number("max_wait", max_wait, minimum=0)
        self.store: ConcurrencyStore = (
            InMemoryConcurrencyStore()
            if store is None
            else check_protocol("store", store, ConcurrencyStore)
        )
        self._local = type(self.store) is InMemoryConcurrencyStore
        self._renewal = self.store.renewal_interval()
        self._lines = WaitingLines()
        self._meta = f"{_SLOT}:{id(self):x}"

    def in_flight(self, key: str = "default") -> int:
        """How many slots of `key` are held (fleet-wide with a shared store)."""
        return self.store.in_flight(key)

    # -- waiting: one plan (`_line`), a sync and an async driver ---------------------------
    def _key_of(self, call: Call) -> str:
        key = self.key
        if key is None:
            return call.model or call.name
        return key if isinstance(key, str) else key(call)

    def _admit_now(self, key: str, lease: str) -> bool:
        """True when an in-memory store admits at once (no I/O, no line, no await)."""
        return (
            self._local
            and not self._lines.busy(key)
            and self.store.acquire(key, self.max_in_flight, lease) == 0.0
        )

    def _line(
        self,
        call: Call,
        key: str,
        lease: str,
        acquire: Callable[[str, int, str], Any],
        release: Callable[[str, str], Any],
        park: Park,
        loop: asyncio.AbstractEventLoop | None,
    ) -> Generator[Any, Any, float]:
        """The decisions of one caller's wait (see `run_plan`); returns the seconds waited.

        Only the head of the line asks the store; the others are parked on their ticket until
        the head leaves. A refused head parks until a release in this process wakes it, or
        (shared stores) until its next poll. A wait past `max_wait` is refused.
        """
        start = time.monotonic()
        deadline = None if self.max_wait is None else start + self.max_wait
        lines, limit = self._lines, self.max_in_flight
        ticket = Ticket(None, loop)
        lines.join(key, ticket)
        polls = 0
        try:
            while True:
                pause = math.inf
                if lines.ahead(key, ticket):
                    try:
                        pause = yield acquire(key, limit, lease)
                    except ConcurrencyLimitError as refused:  # the store refuses (outage)
                        raise self._refused(call, key, start, refused) from None
                    except BaseException as exc:
                        if not isinstance(exc, GeneratorExit):
                            # Cancelled or failed after the store took the slot: give it back.
                            yield release(key, lease)
                        raise
                    if pause == 0.0:
                        return time.monotonic() - start
                    if pause != math.inf:  # a shared store: poll with backoff and jitter
                        pause = min(pause, _FIRST_POLL * 2**polls) * (0.5 + random.random() / 2)
                        polls += 1
                left = math.inf if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise self._refused(call, key, start, None)
                at_most = min(pause, left)
                yield park(ticket, None if at_most == math.inf else at_most)
        finally:
            lines.leave(key, ticket)

    def _refused(
        self, call: Call, key: str, start: float, refused: ConcurrencyLimitError | None
    ) -> ConcurrencyLimitError:
        waited = round(time.monotonic() - start, 6)
        reason = "max_wait" if refused is None else refused.reason
        call.emit(
            "concurrency.refused", key=key, limit=self.max_in_flight, waited=waited, reason=reason
        )
        retry_after = None if refused is None else refused.retry_after
        return ConcurrencyLimitError(
            key, self.max_in_flight, waited=waited, retry_after=retry_after, reason=reason
        )

    def _lost(self, call: Call) -> Callable[[str], None]:
        return lambda key: call.emit("concurrency.lease_lost", key=key)

    def _held(self, call: Call, key: str, lease: str, waited: float, stop: Any) -> None:
        if waited > 0:
            call.emit("concurrency.waited", key=key, seconds=round(waited, 6))
        call.meta[self._meta] = _Held(key, lease, stop)

    # -- taking and giving back a slot: the twins differ in how they wait and renew ----------
    def _take(self, call: Call, key: str) -> None:
        lease, store = new_lease(), self.store
        waited = 0.0
        if not self._admit_now(key, lease):
            waited = run_plan(
                self._line(call, key, lease, store.acquire, store.release, Ticket.wait, None)
            )
        stop = None if self._renewal is None else keep_alive(store, key, lease, self._lost(call))
        self._held(call, key, lease, waited, stop)

    async def _atake(self, call: Call, key: str) -> None:
        lease, store = new_lease(), self.store
        waited = 0.0
        if not self._admit_now(key, lease):
            loop = asyncio.get_running_loop()
            plan = self._line(
                call, key, lease, store.aacquire, _shielded(store.arelease), Ticket.await_, loop
            )
            waited = await arun_plan(plan)
        stop = None if self._renewal is None else akeep_alive(store, key, lease, self._lost(call))
        self._held(call, key, lease, waited, stop)

    def _ending(self, call: Call) -> _Held:
        """The attempt's slot, its lease no longer renewed (it is about to be released)."""
        held: _Held = call.meta.pop(self._meta)
        if held.stop is not None:
            held.stop()
        return held

    def _give_back(self, call: Call) -> None:
        held = self._ending(call)
        try:
            self.store.release(held.key, held.lease)
        finally:
            self._lines.wake_head(held.key)

    async def _agive_back(self, call: Call) -> None:
        held = self._ending(call)
        try:
            if self._local:
                self.store.release(held.key, held.lease)
            else:  # a cancellation arriving now must not leave the slot taken
                await asyncio.shield(self.store.arelease(held.key, held.lease))
        finally:
            self._lines.wake_head(held.key)

    # -- hooks: a slot before each attempt, given back after it (streams: when they end) -----
    def before(self, call: Call) -> None:
        self._take(call, self._key_of(call))

    async def abefore(self, call: Call) -> None:
        await self._atake(call, self._key_of(call))

    def after(self, call: Call, result: Any) -> Any:
        self._give_back(call)
        return result

    async def aafter(self, call: Call, result: Any) -> Any:
        await self._agive_back(call)
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        self._give_back(call)

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        await self._agive_back(call)

    # -- standalone ------------------------------------------------------------------------
    def _standalone(self, key: str) -> Call:
        return new_call("turn", key, _nothing, session=current_session())

    @contextmanager
    def slot(self, key: str = "default") -> Iterator[None]:
        """`with cap.slot("gpt-4o"): ...` holds one slot of `key` for the block (outside a stack;
        events go to the current session, if any)."""
        call = self._standalone(key)
        self._take(call, key)
        try:
            yield
        finally:
            self._give_back(call)

    @asynccontextmanager
    async def aslot(self, key: str = "default") -> AsyncIterator[None]:
        """Async twin of `slot`: `async with cap.aslot("gpt-4o"): ...`."""
        call = self._standalone(key)
        await self._atake(call, key)
        try:
            yield
        finally:
            await self._agive_back(call)


def _shielded(arelease: Callable[[str, str], Awaitable[None]]) -> Callable[[str, str], Any]:
    """`arelease`, shielded: a release made while cancelling runs to its end."""
    return lambda key, lease: asyncio.shield(arelease(key, lease))


def _nothing() -> None:
    return None
