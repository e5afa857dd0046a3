"""`RedisRateLimitStore`: one GCRA shared by every process, decided atomically inside Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from agentmw._validate import check_clock
from agentmw.errors import RateLimitedError
from agentmw.stores.gcra import Demand, Rate
from agentmw.stores.limiter import InMemoryLimiterStore
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable
from agentmw.stores.redis._limiter_lua import ADJUST, COOLDOWN, RESERVE, pack_reserve

__all__ = ["RedisRateLimitStore"]


class RedisRateLimitStore:
    """A `LimiterStore` on Redis: every replica draws from the same buckets.

    One Lua script reserves every dimension of a call (requests and tokens) all or none, timed
    by Redis `TIME` so client clocks never matter (the `now` the limiter passes is ignored).
    Reconciliation charges an excess at once (one script call); a refund (the usual case: fewer
    tokens than estimated, or a failed call) is folded into the next reservation or `wait_time`
    of the same key, so a turn costs one round trip. Until then the fleet sees the tokens as
    still spent (the limit can only be undershot, never exceeded); `flush()` / `aflush()` send
    the refunds waiting now. A provider 429's Retry-After
    sets a cooldown key that pauses the key for the whole fleet. All Redis keys of one limiter
    key share the hash tag `{prefix:key}`, hence one Redis Cluster slot. Keys expire on their
    own once their bucket is full again.

    Plug it in with `RateLimit(..., store=RedisRateLimitStore(url))`.

    Args:
        client_or_url: a `redis://` URL (a sync and an async client are created lazily on first
            use), a `redis.Redis` (sync methods only) or a `redis.asyncio.Redis` (async only).
        prefix: the namespace of every key (no braces).
        on_unavailable: when Redis cannot be reached, "allow" (default) decides with a
            process-local in-memory GCRA, "deny" refuses with `RateLimitedError`.
        socket_timeout: seconds a Redis command may take (URL clients only).
        socket_connect_timeout: seconds to connect (URL clients only).
        retry_interval: after a failure, seconds before Redis is tried again (meanwhile the
            fallback answers at once).
        clock: the `RateLimit`'s clock (default `time.monotonic`): turns a cooldown's `until`
            into a duration.

    Raises:
        TypeError: an argument of the wrong type (`client_or_url` names what it accepts).
        ValueError: an argument outside what is allowed (a URL that is not redis://, rediss://
            or unix://, braces in `prefix`, a timeout or interval <= 0...). Nothing connects
            here: clients connect on first use.
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
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._conn = Connection(
            client_or_url,
            store="redis.rate_limit",
            prefix=prefix,
            on_unavailable=on_unavailable,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry_interval=retry_interval,
        )
        self.local = InMemoryLimiterStore()
        self._clock = check_clock("clock", clock) or time.monotonic
        self._keys: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        # The hot path's names, bounded (keys may be user-derived): per limiter key its hash tag
        # and cooldown key, encoded; per rate what `RESERVE` reads of it (interval and tolerance
        # in µs) and its key's suffix (`:rl:<dimension>`), encoded.
        self._tags: dict[str, tuple[bytes, bytes]] = {}
        self._rates: dict[Rate, tuple[float, float, bytes]] = {}
        # Refunds not sent yet, per limiter key and rate (units <= 0), under `_lock`.
        self._refunds: dict[str, dict[Rate, float]] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """False while Redis is believed unreachable (the fallback mode is in force)."""
        return self._conn.available

    def keys(self, key: str, dimensions: Sequence[str]) -> list[str]:
        """The Redis keys of limiter `key`: its cooldown, then one per dimension."""
        cache_key = (key, tuple(dimensions))
        found = self._keys.get(cache_key)
        if found is None:
            tag = self._conn.tag(key)
            found = [f"{tag}:rl:cooldown", *(f"{tag}:rl:{d}" for d in dimensions)]
            if len(self._keys) < 10_000:  # bounded: keys may be user-derived
                self._keys[cache_key] = found
        return found

    def _tag(self, key: str) -> tuple[bytes, bytes]:
        """`key`'s hash tag and its cooldown key, as sent (see `keys`)."""
        tag = self._conn.encode(self._conn.tag(key))
        found = (tag, tag + b":rl:cooldown")
        if len(self._tags) < 10_000:
            self._tags[key] = found
        return found

    def _rate(self, rate: Rate) -> tuple[float, float, bytes]:
        interval = 1e6 / rate.per_second
        found = (interval, rate.burst * interval, self._conn.encode(f":rl:{rate.dimension}"))
        if len(self._rates) < 1_000:
            self._rates[rate] = found
        return found

    def pending(self, key: str) -> list[Demand]:
        """The refunds of `key` waiting for its next round trip (rate, units <= 0)."""
        with self._lock:
            return list(self._refunds.get(key, {}).items())

    def _take(self, key: str) -> dict[Rate, float] | None:
        if not self._refunds:
            return None
        with self._lock:
            return self._refunds.pop(key, None)

    def _defer(self, key: str, refunds: Sequence[Demand]) -> None:
        """Keep `refunds` (units <= 0; zeros are skipped) for the next round trip of `key`."""
        with self._lock:
            waiting = self._refunds.get(key)
            for rate, cost in refunds:
                if cost:
                    if waiting is None:
                        waiting = self._refunds[key] = {}
                    waiting[rate] = waiting.get(rate, 0.0) + cost

    # -- plans: each operation once, driven by `run` (sync) or `arun` (async) ----------------
    def _reserve(
        self, key: str, demands: Sequence[Demand], record: bool
    ) -> tuple[list[bytes], bytes, list[Demand]]:
        """The keys (encoded) and the packed argument of one `RESERVE`, and the refunds it
        carries."""
        refunds = self._take(key)
        tag, cooldown = self._tags.get(key) or self._tag(key)
        keys = [cooldown]
        numbers: list[float] = []
        taken: list[Demand] = []
        rates = self._rates
        for rate, cost in demands:
            interval, tolerance, suffix = rates.get(rate) or self._rate(rate)
            refund = refunds.pop(rate, 0.0) if refunds else 0.0
            numbers += (cost * interval, tolerance, refund * interval)
            keys.append(tag + suffix)
            if refund:
                taken.append((rate, refund))
        if refunds:  # refunds on dimensions this call does not demand: applied all the same
            for rate, refund in refunds.items():
                interval, _, suffix = rates.get(rate) or self._rate(rate)
                numbers += (0.0, -1.0, refund * interval)
                keys.append(tag + suffix)
                taken.append((rate, refund))
        return keys, pack_reserve(record, numbers), taken

    def _without_redis(
        self, key: str, demands: Sequence[Demand], now: float, record: bool, taken: list[Demand]
    ) -> float:
        """The decision while Redis is unreachable: the refunds taken go to the fallback."""
        if taken:
            self.local.adjust(key, taken, now)
        if self._conn.on_unavailable == "deny":
            raise RateLimitedError(
                self._conn.retry_interval,
                f"rate limit for key {key!r}: Redis is unreachable and on_unavailable='deny'",
            ) from None
        local = self.local
        return local.acquire(key, demands, now) if record else local.wait_time(key, demands, now)

    def _decide(self, key: str, demands: Sequence[Demand], now: float, record: bool) -> Plan[float]:
        keys, arg, taken = self._reserve(key, demands, record)
        try:
            waited = yield Command(RESERVE, [k.decode() for k in keys], [arg])
        except Unavailable:
            return self._without_redis(key, demands, now, record, taken)
        return int(waited) / 1e6

    def _direct(self, key: str, demands: Sequence[Demand], now: float, record: bool) -> float:
        """`_decide` without a plan while Redis is believed up: one EVALSHA (the hot path)."""
        keys, arg, taken = self._reserve(key, demands, record)
        conn = self._conn
        try:
            waited = conn.evalsha(RESERVE, keys, arg)
        except conn.errors as exc:
            conn.failed(exc)
            return self._without_redis(key, demands, now, record, taken)
        return waited / 1e6 if waited else 0.0

    async def _adirect(
        self, key: str, demands: Sequence[Demand], now: float, record: bool
    ) -> float:
        """Async twin of `_direct`."""
        keys, arg, taken = self._reserve(key, demands, record)
        conn = self._conn
        try:
            waited = await conn.aevalsha(RESERVE, keys, arg)
        except conn.errors as exc:
            conn.failed(exc)
            return self._without_redis(key, demands, now, record, taken)
        return waited / 1e6 if waited else 0.0

    def _adjust(self, key: str, demands: Sequence[Demand], now: float) -> Plan[None]:
        if _refunds_only(demands):
            self._defer(key, demands)  # sent with the next reservation
            return
        totals = dict(self._take(key) or {})  # a charge pays a round trip: refunds ride along
        for rate, cost in demands:
            totals[rate] = totals.get(rate, 0.0) + cost
        merged = [(rate, cost) for rate, cost in totals.items() if cost]
        yield from self._send(key, merged, now)

    def _send(self, key: str, demands: Sequence[Demand], now: float) -> Plan[None]:
        if not demands:
            return
        argv: list[Any] = []
        for rate, cost in demands:
            argv += (1e6 / rate.per_second, cost)
        try:
            yield Command(ADJUST, self.keys(key, [r.dimension for r, _ in demands])[1:], argv)
        except Unavailable:
            self.local.adjust(key, demands, now)

    def _flush(self) -> Plan[None]:
        with self._lock:
            waiting, self._refunds = self._refunds, {}
        now = self._clock()
        items = [(key, list(refunds.items())) for key, refunds in waiting.items() if refunds]
        for index, (key, refunds) in enumerate(items):
            argv: list[Any] = []
            for rate, cost in refunds:
                argv += (1e6 / rate.per_second, cost)
            try:
                yield Command(ADJUST, self.keys(key, [r.dimension for r, _ in refunds])[1:], argv)
            except Unavailable:  # Redis is down: the rest go to the fallback, nothing is lost
                for rest_key, rest in items[index:]:
                    self.local.adjust(rest_key, rest, now)
                return

    def _cooldown(self, key: str, until: float) -> Plan[None]:
        seconds = until - self._clock()
        if seconds <= 0:
            return
        self.local.cooldown(key, until)  # also honoured here if Redis fails later
        with suppress(Unavailable):  # the local cooldown above is the fallback
            yield Command(COOLDOWN, self.keys(key, ())[:1], [seconds])

    # -- the public twins ------------------------------------------------------------------
    def acquire(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Admit every demand or none: 0.0 when admitted, else seconds to wait."""
        if self._conn.available:
            return self._direct(key, demands, now, True)
        return self._conn.run(self._decide(key, demands, now, True))

    def wait_time(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Seconds until `demands` could be admitted; records nothing."""
        if self._conn.available:
            return self._direct(key, demands, now, False)
        return self._conn.run(self._decide(key, demands, now, False))

    def adjust(self, key: str, demands: Sequence[Demand], now: float) -> None:
        """Charge (now) or refund (with the key's next round trip) admitted units."""
        if _refunds_only(demands):
            self._defer(key, demands)
            return
        self._conn.run(self._adjust(key, demands, now))

    def flush(self) -> None:
        """Send every refund still waiting for a round trip (one script call per key)."""
        self._conn.run(self._flush())

    async def aflush(self) -> None:
        """Async twin of `flush`."""
        await self._conn.arun(self._flush())

    def cooldown(self, key: str, until: float) -> None:
        """Pause `key` for every process until `until` (on the limiter's clock)."""
        self._conn.run(self._cooldown(key, until))

    async def aacquire(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Async twin of `acquire`."""
        if self._conn.available:
            return await self._adirect(key, demands, now, True)
        return await self._conn.arun(self._decide(key, demands, now, True))

    async def await_time(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Async twin of `wait_time`."""
        if self._conn.available:
            return await self._adirect(key, demands, now, False)
        return await self._conn.arun(self._decide(key, demands, now, False))

    async def aadjust(self, key: str, demands: Sequence[Demand], now: float) -> None:
        """Async twin of `adjust`."""
        if _refunds_only(demands):
            self._defer(key, demands)
            return
        await self._conn.arun(self._adjust(key, demands, now))

    async def acooldown(self, key: str, until: float) -> None:
        """Async twin of `cooldown`."""
        await self._conn.arun(self._cooldown(key, until))


def _refunds_only(demands: Sequence[Demand]) -> bool:
    """True when no demand charges (every cost <= 0): the adjustment can wait."""
    for _, cost in demands:  # noqa: SIM110 (all() and a generator: a frame per call)
        if cost > 0:
            return False
    return True
