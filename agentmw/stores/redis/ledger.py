"""`RedisLedger`: one spend ledger for a fleet, in integer nano-dollars, with check-and-add."""

from __future__ import annotations

import threading
from decimal import ROUND_CEILING, Decimal
from typing import Any

from agentmw._validate import check_optional_number
from agentmw.stores.ledger import LedgerResult
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable

__all__ = ["RedisLedger"]

UNITS_PER_USD = 10**9
_INFINITY = Decimal("Infinity")

# KEYS[1] = the spend; ARGV = amount (units), limit (units, '' for none), ttl (ms, '' for none).
# Returns {added (0/1), total (units)}. Integers stay exact below 2^53 units (~9 million USD).
_ADD = """
local amount = tonumber(ARGV[1])
if ARGV[2] ~= '' then
  local current = tonumber(redis.call('GET', KEYS[1]) or '0')
  if current + amount > tonumber(ARGV[2]) then return {0, current} end
end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, total}
"""
_GET = "return redis.call('GET', KEYS[1])"


def to_units(amount: Decimal) -> int:
    """USD to nano-dollars, rounded up (a fraction of a unit is never left uncounted)."""
    return int((amount * UNITS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def to_usd(units: int) -> Decimal:
    """Nano-dollars to an exact `Decimal` of USD."""
    return Decimal(units).scaleb(-9)


class RedisLedger:
    """A `Ledger` on Redis: one budget for every replica (`Budget(..., ledger=RedisLedger(url))`).

    Spend is kept as an integer count of nano-dollars (1e-9 USD) per key, so sums are exact; an
    amount finer than that is rounded up to the next nano-dollar. `add(..., limit=)` checks and
    adds in one Lua script, so N replicas under one limit overshoot it by at most the calls
    already in flight.

    When Redis cannot be reached, amounts added are kept in this process and written to Redis
    on the next successful operation (so a write that timed out after Redis applied it may be
    counted twice: spend is over- rather than under-counted). With `on_unavailable="deny"` (the
    default) `spent` reads `Decimal("Infinity")`, so an enforcing `Budget` refuses calls, and a
    limited `add` adds nothing; with "allow" both use the last total seen plus the local spend.

    Args:
        client_or_url: a `redis://` URL (a sync and an async client are created lazily), a
            `redis.Redis` (sync methods only) or a `redis.asyncio.Redis` (async only).
        prefix: the namespace of every key (no braces).
        on_unavailable: "deny" (default) or "allow", as described above.
        socket_timeout: seconds a Redis command may take (URL clients only).
        socket_connect_timeout: seconds to connect (URL clients only).
        retry_interval: after a failure, seconds before Redis is tried again.
        ttl: seconds a key's spend is kept after its last addition (default: forever).

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
        on_unavailable: str = "deny",
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.5,
        retry_interval: float = 1.0,
        ttl: float | None = None,
    ) -> None:
        self._conn = Connection(
            client_or_url,
            store="redis.ledger",
            prefix=prefix,
            on_unavailable=on_unavailable,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry_interval=retry_interval,
        )
        ttl = check_optional_number("ttl", ttl, above=0)
        self._ttl = "" if ttl is None else str(int(ttl * 1000))
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}  # the last total Redis reported, per key
        self._pending: dict[str, int] = {}  # units added while Redis was unreachable

    @property
    def available(self) -> bool:
        """False while Redis is believed unreachable (the fallback mode is in force)."""
        return self._conn.available

    @property
    def pending(self) -> dict[str, Decimal]:
        """Spend recorded during an outage and not yet written to Redis, per key."""
        with self._lock:
            return {key: to_usd(units) for key, units in self._pending.items()}

    def redis_key(self, key: str) -> str:
        """The Redis key holding the spend of `key`."""
        return f"{self._conn.tag(key)}:ledger"

    # -- bookkeeping shared by both paths --------------------------------------------------
    def _take_pending(self) -> dict[str, int]:
        if not self._pending:  # the usual case: no lock on the hot path
            return {}  # a new dict: another thread may fill the live one meanwhile
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def _keep_pending(self, pending: dict[str, int]) -> None:
        if not pending:
            return
        with self._lock:
            for key, units in pending.items():
                self._pending[key] = self._pending.get(key, 0) + units

    def _known(self, key: str) -> int:
        with self._lock:
            return self._seen.get(key, 0) + self._pending.get(key, 0)

    def _saw(self, key: str, total: int) -> int:
        with self._lock:
            self._seen[key] = total
        return total

    # -- plans: each operation once, driven by `run` (sync) or `arun` (async) ----------------
    def _flush(self) -> Plan[None]:
        # Spend kept during an outage goes first; what is not written stays pending.
        pending = self._take_pending()
        try:
            for key in list(pending):
                yield Command(_ADD, [self.redis_key(key)], [pending[key], "", ""])
                del pending[key]
        finally:
            self._keep_pending(pending)

    def _spent(self, key: str) -> Plan[Decimal]:
        try:
            yield from self._flush()
            raw = yield Command(_GET, [self.redis_key(key)], [])
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return _INFINITY
            return to_usd(self._known(key))
        return to_usd(self._saw(key, int(raw or 0)))

    def _add(self, key: str, amount: Decimal, limit: Decimal | None) -> Plan[LedgerResult]:
        if not isinstance(amount, Decimal):
            raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
        units = to_units(amount)
        cap = None if limit is None else int(limit * UNITS_PER_USD)
        try:
            yield from self._flush()
            args = [units, "" if cap is None else cap, self._ttl]
            added, total = yield Command(_ADD, [self.redis_key(key)], args)
        except Unavailable:
            known = self._known(key)
            if cap is not None and (self._conn.on_unavailable == "deny" or known + units > cap):
                return LedgerResult(False, to_usd(known))
            self._keep_pending({key: units})
            return LedgerResult(True, to_usd(known + units))
        return LedgerResult(bool(added), to_usd(self._saw(key, int(total))))

    # -- the public twins ------------------------------------------------------------------
    def spent(self, key: str) -> Decimal:
        """The amount spent under `key` by the whole fleet."""
        return self._conn.run(self._spent(key))

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult:
        """Add `amount` under `key` unless the total would pass `limit` (atomic fleet-wide)."""
        return self._conn.run(self._add(key, amount, limit))

    async def aspent(self, key: str) -> Decimal:
        """Async twin of `spent`."""
        return await self._conn.arun(self._spent(key))

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult:
        """Async twin of `add`."""
        return await self._conn.arun(self._add(key, amount, limit))
