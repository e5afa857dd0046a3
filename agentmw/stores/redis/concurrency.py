"""`RedisConcurrencyStore`: one concurrency cap for every process, as a semaphore of leases."""

from __future__ import annotations

import math
from contextlib import suppress
from typing import Any

from agentmw._validate import check_number
from agentmw.errors import ConcurrencyLimitError
from agentmw.stores.concurrency import InMemoryConcurrencyStore
from agentmw.stores.redis._concurrency_lua import ACQUIRE, IN_FLIGHT, RELEASE, RENEW
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable

__all__ = ["RedisConcurrencyStore"]


class RedisConcurrencyStore:
    """A `ConcurrencyStore` on Redis: at most `limit` calls in flight per key across a fleet.

    Each key is one sorted set of lease ids scored by their expiry; one Lua script drops the
    expired leases and admits atomically, on Redis `TIME` (client clocks never matter). A
    holder renews its lease every `lease_ttl / 3` seconds while its call runs, so a process that
    dies (SIGKILL, a lost host) gives its slots back within `lease_ttl`. A holder that cannot
    renew in time (its process paused longer than the TTL, Redis unreachable meanwhile) loses the
    slot: the layer emits `concurrency.lease_lost` and the call runs on, uncounted.

    Waiting across processes is polling: a waiting caller asks again after 5 ms, then backs off
    to at most `poll_interval` seconds (sooner when the earliest lease will expire sooner);
    callers of one process wait in line, first come, first served, and a release in the same
    process wakes the next one at once. The Redis key has the hash tag `{prefix:key}`, like the
    other stores' keys of that key (one Redis Cluster slot).

    Plug it in with `Concurrency(8, store=RedisConcurrencyStore(url))`.

    Args:
        client_or_url: a `redis://` URL (a sync and an async client are created lazily on first
            use), a `redis.Redis` (sync methods only) or a `redis.asyncio.Redis` (async only).
        prefix: the namespace of every key (no braces).
        on_unavailable: when Redis cannot be reached, "allow" (default) caps the key with a
            process-local in-memory store, "deny" refuses with `ConcurrencyLimitError`.
        socket_timeout: seconds a Redis command may take (URL clients only).
        socket_connect_timeout: seconds to connect (URL clients only).
        retry_interval: after a failure, seconds before Redis is tried again.
        lease_ttl: seconds a lease lives without renewal (default 10): how long a dead
            holder's slot stays taken.
        poll_interval: the longest pause between two polls of a waiting caller (default 0.25).

    Raises:
        TypeError: an argument of the wrong type (`client_or_url` names what it accepts).
        ValueError: an argument outside what is allowed (a URL that is not redis://, rediss://
            or unix://, braces in `prefix`, a timeout, interval or TTL <= 0...). Nothing
            connects here: clients connect on first use.
    """

    def __init__(
        self,
        client_or_url: Any,
        *,
        prefix: str = "agentmw",
        on_unavailable: str = "allow",
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.5,
        retry_interval: float = 1.0,
        lease_ttl: float = 10.0,
        poll_interval: float = 0.25,
    ) -> None:
        self._conn = Connection(
            client_or_url,
            store="redis.concurrency",
            prefix=prefix,
            on_unavailable=on_unavailable,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry_interval=retry_interval,
        )
        self.lease_ttl = check_number("lease_ttl", lease_ttl, minimum=0.01)
        self.poll_interval = check_number("poll_interval", poll_interval, above=0)
        self._ttl_ms = math.ceil(self.lease_ttl * 1000)
        self.local = InMemoryConcurrencyStore()

    @property
    def available(self) -> bool:
        """False while Redis is believed unreachable (the fallback mode is in force)."""
        return self._conn.available

    def redis_key(self, key: str) -> str:
        """The Redis key holding the leases of `key`."""
        return f"{self._conn.tag(key)}:cc"

    def renewal_interval(self) -> float | None:
        """A third of `lease_ttl`: two renewals may fail before a live holder loses its slot."""
        return self.lease_ttl / 3

    # -- plans: each operation once, driven by `run` (sync) or `arun` (async) ----------------
    def _acquire(self, key: str, limit: int, lease: str) -> Plan[float]:
        try:
            wait_ms = yield Command(ACQUIRE, [self.redis_key(key)], [limit, lease, self._ttl_ms])
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                raise ConcurrencyLimitError(
                    key, limit, retry_after=self._conn.retry_interval, reason="unavailable"
                ) from None
            # A slot taken here is released here; a waiter asks Redis again once it may be back.
            return min(self.local.acquire(key, limit, lease), self.poll_interval)
        return 0.0 if not wait_ms else min(int(wait_ms) / 1000, self.poll_interval)

    def _release(self, key: str, lease: str) -> Plan[None]:
        if self.local.holds(key, lease):  # taken during an outage
            self.local.release(key, lease)
            return
        # Unreachable now: the lease runs out on its own within `lease_ttl`.
        with suppress(Unavailable):
            yield Command(RELEASE, [self.redis_key(key)], [lease])

    def _renew(self, key: str, lease: str) -> Plan[bool]:
        if self.local.holds(key, lease):
            return True
        try:
            kept = yield Command(RENEW, [self.redis_key(key)], [lease, self._ttl_ms])
        except Unavailable:
            return True  # unknown; if it expires meanwhile, a renewal after the outage says so
        return bool(kept)

    def _in_flight(self, key: str) -> Plan[int]:
        try:
            count = yield Command(IN_FLIGHT, [self.redis_key(key)], [])
        except Unavailable:
            return self.local.in_flight(key)
        return int(count) + self.local.in_flight(key)

    # -- the public twins ------------------------------------------------------------------
    def acquire(self, key: str, limit: int, lease: str) -> float:
        """Take a slot (0.0), else the longest pause worth making before asking again."""
        return self._conn.run(self._acquire(key, limit, lease))

    def release(self, key: str, lease: str) -> None:
        """Give the slot back (a lease that is not held is ignored)."""
        self._conn.run(self._release(key, lease))

    def renew(self, key: str, lease: str) -> bool:
        """Extend the lease by `lease_ttl`; False when it had already expired."""
        return self._conn.run(self._renew(key, lease))

    def in_flight(self, key: str) -> int:
        """Valid leases of `key`, fleet-wide (plus any taken here during an outage)."""
        return self._conn.run(self._in_flight(key))

    async def aacquire(self, key: str, limit: int, lease: str) -> float:
        """Async twin of `acquire`."""
        return await self._conn.arun(self._acquire(key, limit, lease))

    async def arelease(self, key: str, lease: str) -> None:
        """Async twin of `release`."""
        await self._conn.arun(self._release(key, lease))

    async def arenew(self, key: str, lease: str) -> bool:
        """Async twin of `renew`."""
        return await self._conn.arun(self._renew(key, lease))

    async def ain_flight(self, key: str) -> int:
        """Async twin of `in_flight`."""
        return await self._conn.arun(self._in_flight(key))
