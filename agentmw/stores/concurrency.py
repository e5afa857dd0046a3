"""Concurrency stores: who holds a slot of a capped key (in memory by default; Redis for a fleet).

A slot is held as a *lease*: an id the holder picks, taken with `acquire` and given back with
`release`. A store whose leases expire (so a dead holder's slot comes back) asks the holder to
`renew` them every `renewal_interval()` seconds while it runs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, runtime_checkable

from agentmw.core.loops import arun_plan, run_plan
from agentmw.stores._twins import inline

# `new_lease`, `keep_alive` and `akeep_alive` are for the layer, not public API.
__all__ = ["ConcurrencyStore", "InMemoryConcurrencyStore"]


class _Leases:
    """Lease ids unique across processes and hosts: a random token per process, a counter."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child must not reuse ids

    def reset(self) -> None:
        self.token = uuid.uuid4().hex[:16]
        self.counter = itertools.count()


_LEASES = _Leases()


def new_lease() -> str:
    """A fresh lease id, unique across every process sharing a store."""
    return f"{_LEASES.token}:{next(_LEASES.counter)}"


@runtime_checkable
class ConcurrencyStore(Protocol):
    """Leases per key under a cap, with sync and async twins.

    Each method is one atomic step. `acquire` returns 0.0 when the lease was taken, else the
    longest pause worth making before asking again (a waiter polls more often at first);
    `math.inf` means only a release in this process can free a slot, so the waiter sleeps until
    one wakes it. Releasing or renewing a lease the store does not hold is harmless.
    """

    def renewal_interval(self) -> float | None:
        """Seconds between renewals of a held lease; None when leases never expire."""
        ...

    def acquire(self, key: str, limit: int, lease: str) -> float:
        """Take a slot of `key` for `lease` when fewer than `limit` are held."""
        ...

    def release(self, key: str, lease: str) -> None:
        """Give the slot of `lease` back."""
        ...

    def renew(self, key: str, lease: str) -> bool:
        """Extend `lease`; False when it was lost (it expired and may be someone else's now)."""
        ...

    def in_flight(self, key: str) -> int:
        """How many leases of `key` are held."""
        ...

    async def aacquire(self, key: str, limit: int, lease: str) -> float:
        """Async twin of `acquire`."""
        ...

    async def arelease(self, key: str, lease: str) -> None:
        """Async twin of `release`."""
        ...

    async def arenew(self, key: str, lease: str) -> bool:
        """Async twin of `renew`."""
        ...

    async def ain_flight(self, key: str) -> int:
        """Async twin of `in_flight`."""
        ...


class InMemoryConcurrencyStore:
    """The default store: leases per key in this process (they end with it, so never expire).

    One short lock guards the sets, never a call; the async twins never block.
    """

    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def renewal_interval(self) -> float | None:
        """None: a lease lives as long as its process, nothing to renew."""
        return None

    def acquire(self, key: str, limit: int, lease: str) -> float:
        """Take a slot (0.0), or `math.inf`: wait for a release in this process."""
        with self._lock:
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = set()
            if lease in held or len(held) < limit:
                held.add(lease)
                return 0.0
        return math.inf

    def release(self, key: str, lease: str) -> None:
        """Give the slot back (twice is harmless)."""
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return
            held.discard(lease)
            if not held:
                del self._held[key]

    def renew(self, key: str, lease: str) -> bool:
        """True while the lease is held (in memory, leases never expire)."""
        return self.holds(key, lease)

    def holds(self, key: str, lease: str) -> bool:
        """True when `lease` holds a slot of `key`."""
        return lease in self._held.get(key, ())

    def in_flight(self, key: str) -> int:
        """How many slots of `key` are held."""
        return len(self._held.get(key, ()))

    # The async twins run inline: nothing here blocks.
    aacquire = inline(acquire)
    arelease = inline(release)
    arenew = inline(renew)
    ain_flight = inline(in_flight)


# -- keeping a lease alive while its call runs: one plan, a thread or a task drives it ---------
def _renewals(
    interval: float,
    key: str,
    lease: str,
    renew: Callable[[str, str], Any],
    pause: Callable[[float], Any],
    stopped: Callable[[], bool],
    lost: Callable[[str], None],
) -> Generator[Any, Any, None]:
    """Renew `lease` every `interval` until stopped (`pause` returns True) or it is lost."""
    while not (yield pause(interval)):
        if not (yield renew(key, lease)) and not stopped():
            lost(key)
            return


def keep_alive(
    store: ConcurrencyStore, key: str, lease: str, lost: Callable[[str], None]
) -> Callable[[], None]:
    """Renew `lease` from a daemon thread (sync callers); returns what stops it.

    `lost(key)` is called once if the store says the lease expired before it was renewed.
    """
    interval = store.renewal_interval()
    assert interval is not None
    stop = threading.Event()
    plan = _renewals(interval, key, lease, store.renew, stop.wait, stop.is_set, lost)
    threading.Thread(
        target=run_plan, args=(plan,), name=f"agentmw-lease:{key}", daemon=True
    ).start()
    return stop.set


def akeep_alive(
    store: ConcurrencyStore, key: str, lease: str, lost: Callable[[str], None]
) -> Callable[[], Any]:
    """Async twin of `keep_alive`: a task on the running loop, awaiting only `arenew`."""
    interval = store.renewal_interval()
    assert interval is not None
    plan = _renewals(interval, key, lease, store.arenew, _asleep, _never, lost)
    return asyncio.get_running_loop().create_task(arun_plan(plan)).cancel  # cancel stops it


def _asleep(seconds: float) -> Awaitable[bool]:
    return asyncio.sleep(seconds, False)


def _never() -> bool:
    return False
