"""`RedisLedger`: one spend ledger for a fleet, in integer nano-dollars, with check-and-add and
reservations (each call's worst case held fleet-wide while it runs)."""

from __future__ import annotations

import threading
import uuid
from decimal import ROUND_CEILING, Decimal
from typing import Any

from agentmw._validate import check_number, check_optional_number
from agentmw.stores.ledger import LedgerResult, Reservation, _check_amount
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable

__all__ = ["RedisLedger"]

UNITS_PER_USD = 10**9
_INFINITY = Decimal("Infinity")
_ZERO_USD = Decimal(0)

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

# Reservations of one key: KEYS[2] is a hash id -> units, KEYS[3] a sorted set id -> the time
# (ms of Redis TIME) the hold lapses, so the holds of a process that died are not kept forever.
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(lapsed) do redis.call('HDEL', KEYS[2], id) end
if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local held = 0
for _, units in ipairs(redis.call('HVALS', KEYS[2])) do held = held + tonumber(units) end
"""
# ARGV = id, amount (units), limit (units), hold (ms). Returns {granted (0/1), spent, held}.
_RESERVE = (
    _HELD
    + """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[2])
if spent + held + amount > tonumber(ARGV[3]) then return {0, spent, held} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {1, spent, held}
"""
)
_RESERVED = _HELD + "return held"
# ARGV = id ('' for none), cost (units), ttl (ms, '' for none). Returns the spend after.
_SETTLE = """
if ARGV[1] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
local total
if tonumber(ARGV[2]) > 0 then
  total = redis.call('INCRBY', KEYS[1], ARGV[2])
  if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
else
  total = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return total
"""
_LOCAL = "local:"  # the id prefix of a reservation granted in this process during an outage


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
        hold_timeout: seconds a reservation is held at most: the hold of a call that runs longer
            (or of a process that died mid-call) lapses, and its spend is only counted when
            it is settled.

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
        hold_timeout: float = 900.0,
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
        self._hold_ms = int(check_number("hold_timeout", hold_timeout, above=0) * 1000)
        self._held: dict[str, int] = {}  # units reserved in this process during an outage
        self._drops: list[tuple[str, str]] = []  # (key, id) of holds released during an outage
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

    def _keys(self, key: str) -> list[str]:
        tag = self._conn.tag(key)
        return [f"{tag}:ledger", f"{tag}:held", f"{tag}:holds"]

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
        if self._drops:
            with self._lock:
                drops, self._drops = self._drops, []
            try:
                while drops:
                    key, hold = drops[-1]
                    yield Command(_SETTLE, self._keys(key), [hold, 0, ""])
                    drops.pop()
            finally:
                if drops:
                    with self._lock:
                        self._drops.extend(drops)

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

    def _local_held(self, key: str, units: int) -> None:
        with self._lock:
            self._held[key] = self._held.get(key, 0) + units

    def _reserved(self, key: str) -> Plan[Decimal]:
        try:
            yield from self._flush()
            held = yield Command(_RESERVED, self._keys(key), [])
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return _INFINITY
            held = 0
        with self._lock:
            return to_usd(int(held) + self._held.get(key, 0))

    def _reserve(self, key: str, amount: Decimal, limit: Decimal) -> Plan[Reservation]:
        _check_amount("amount", amount)
        _check_amount("limit", limit)
        units, cap = to_units(amount), int(limit * UNITS_PER_USD)
        hold = uuid.uuid4().hex
        try:
            yield from self._flush()
            args = [hold, units, cap, self._hold_ms]
            granted, spent, held = yield Command(_RESERVE, self._keys(key), args)
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return Reservation(key, amount, False, _INFINITY, _ZERO_USD)
            with self._lock:
                known = self._seen.get(key, 0) + self._pending.get(key, 0)
                local = self._held.get(key, 0)
                if known + local + units > cap:
                    return Reservation(key, amount, False, to_usd(known), to_usd(local))
                self._held[key] = local + units
            return Reservation(key, amount, True, to_usd(known), to_usd(local), _LOCAL + hold)
        self._saw(key, int(spent))
        return Reservation(key, amount, bool(granted), to_usd(int(spent)), to_usd(int(held)), hold)

    def _settle(self, reservation: Reservation, cost: Decimal) -> Plan[Decimal]:
        _check_amount("cost", cost)
        key, hold, units = reservation.key, reservation.id, to_units(cost)
        if not reservation.granted:
            hold = ""
        elif hold.startswith(_LOCAL):
            self._local_held(key, -to_units(reservation.amount))
            hold = ""
        try:
            yield from self._flush()
            total = yield Command(_SETTLE, self._keys(key), [hold, units, self._ttl])
        except Unavailable:
            with self._lock:
                if hold:
                    self._drops.append((key, hold))
                if units:
                    self._pending[key] = self._pending.get(key, 0) + units
                return to_usd(self._seen.get(key, 0) + self._pending.get(key, 0))
        return to_usd(self._saw(key, int(total)))

    # -- the public twins ------------------------------------------------------------------
    def spent(self, key: str) -> Decimal:
        """The amount spent under `key` by the whole fleet."""
        return self._conn.run(self._spent(key))

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult:
        """Add `amount` under `key` unless the total would pass `limit` (atomic fleet-wide)."""
        return self._conn.run(self._add(key, amount, limit))

    def reserved(self, key: str) -> Decimal:
        """What reservations in flight hold under `key`, fleet-wide (lapsed holds dropped)."""
        return self._conn.run(self._reserved(key))

    def reserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation:
        """Hold `amount` under `key` unless spend + holds + `amount` would pass `limit` (one
        Lua script: atomic across every process). During an outage, "deny" refuses and "allow"
        holds it in this process against the last spend seen."""
        return self._conn.run(self._reserve(key, amount, limit))

    def settle(self, reservation: Reservation, cost: Decimal) -> Decimal:
        """Drop `reservation`'s hold and add `cost` in one script; returns the fleet's spend."""
        return self._conn.run(self._settle(reservation, cost))

    def release(self, reservation: Reservation) -> None:
        """Drop `reservation`'s hold without spending (the call failed or was cancelled)."""
        self._conn.run(self._settle(reservation, _ZERO_USD))

    async def areserved(self, key: str) -> Decimal:
        """Async twin of `reserved`."""
        return await self._conn.arun(self._reserved(key))

    async def areserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation:
        """Async twin of `reserve`."""
        return await self._conn.arun(self._reserve(key, amount, limit))

    async def asettle(self, reservation: Reservation, cost: Decimal) -> Decimal:
        """Async twin of `settle`."""
        return await self._conn.arun(self._settle(reservation, cost))

    async def arelease(self, reservation: Reservation) -> None:
        """Async twin of `release`."""
        await self._conn.arun(self._settle(reservation, _ZERO_USD))

    async def aspent(self, key: str) -> Decimal:
        """Async twin of `spent`."""
        return await self._conn.arun(self._spent(key))

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult:
        """Async twin of `add`."""
        return await self._conn.arun(self._add(key, amount, limit))
