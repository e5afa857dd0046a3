"""`RedisBreakerStore`: circuit state shared by every process, each transition one Lua script."""

from __future__ import annotations

import math
from typing import Any

from agentmw._validate import check_optional_number
from agentmw.stores.breaker import InMemoryBreakerStore
from agentmw.stores.circuit import OPEN, BreakerConfig, BreakerState, Outcome, Permit
from agentmw.stores.redis._breaker_lua import ACQUIRE, RECORD, STATE
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable

__all__ = ["RedisBreakerStore"]

_STATES = {"open": BreakerState.OPEN, "closed": BreakerState.CLOSED}
_OUTCOMES = {"success": "s", "failure": "f", "release": "r"}
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisBreakerStore:
    """A `BreakerStore` on Redis: a circuit opened by failures in one replica refuses in all.

    Transitions run atomically in Lua on Redis `TIME` (the breaker's `now` is ignored, so its
    clock does not matter). Half-open probe permits are counted fleet-wide: at most
    `half_open_max_calls` probes run across all processes; a probe outstanding longer than
    `recovery_timeout` is presumed lost (its process died) and its permit is reissued. Each
    circuit expires after `ttl` seconds without a write, so abandoned state goes away.

    Plug it in with `CircuitBreaker("llm", store=RedisBreakerStore(url))`.

    Args:
        client_or_url: a `redis://` URL (a sync and an async client are created lazily), a
            `redis.Redis` (sync methods only) or a `redis.asyncio.Redis` (async only; `state`
            and `reset`, which are sync, then need a URL or sync client).
        prefix: the namespace of every key (no braces).
        on_unavailable: when Redis cannot be reached, "allow" (default) decides with a
            process-local in-memory breaker, "deny" refuses every call (`CircuitOpenError`).
        socket_timeout: seconds a Redis command may take (URL clients only).
        socket_connect_timeout: seconds to connect (URL clients only).
        retry_interval: after a failure, seconds before Redis is tried again.
        ttl: seconds an idle circuit is kept (default: twice the longer of `recovery_timeout`
            and `window`, plus a minute).

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
        ttl: float | None = None,
    ) -> None:
        self._conn = Connection(
            client_or_url,
            store="redis.circuit_breaker",
            prefix=prefix,
            on_unavailable=on_unavailable,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry_interval=retry_interval,
        )
        self.ttl = check_optional_number("ttl", ttl, above=0)
        self.local = InMemoryBreakerStore()

    @property
    def available(self) -> bool:
        """False while Redis is believed unreachable (the fallback mode is in force)."""
        return self._conn.available

    def keys(self, name: str, key: str) -> list[str]:
        """The Redis keys of circuit (`name`, `key`): its hash and its ratio window."""
        circuit = f"{self._conn.tag(key)}:cb:{name}"
        return [circuit, f"{circuit}:w"]

    def _ttl_ms(self, config: BreakerConfig) -> int:
        ttl = self.ttl
        if ttl is None:
            ttl = 2 * max(config.recovery_timeout, config.window) + 60.0
        return math.ceil(ttl * 1000)

    # -- plans: each operation once, driven by `run` (sync) or `arun` (async) ----------------
    def _acquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Plan[Permit]:
        args = [config.recovery_timeout * 1e6, config.half_open_max_calls, self._ttl_ms(config)]
        try:
            reply = yield Command(ACQUIRE, self.keys(name, key)[:1], args)
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return Permit(False, retry_after=self._conn.retry_interval)
            return self.local.acquire(name, key, config, now)
        allowed, probe, generation, retry_us, entered = (int(v) for v in reply)
        return Permit(
            bool(allowed),
            probe=bool(probe),
            generation=generation,
            retry_after=retry_us / 1e6,
            transition=BreakerState.HALF_OPEN if entered else None,
        )

    def _record(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> Plan[BreakerState | None]:
        ratio = config.failure_ratio
        args = [
            _OUTCOMES[outcome],
            "1" if permit.probe else "0",
            permit.generation,
            config.failure_threshold,
            config.half_open_max_calls,
            "" if ratio is None else ratio,
            config.minimum_calls,
            config.window * 1e6,
            self._ttl_ms(config),
        ]
        try:
            entered = yield Command(RECORD, self.keys(name, key), args)
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return None
            return self.local.record(name, key, config, now, permit, outcome)
        return _STATES.get(_text(entered))

    def _state(self, name: str, key: str, config: BreakerConfig, now: float) -> Plan[BreakerState]:
        try:
            reply = yield Command(STATE, self.keys(name, key)[:1], [config.recovery_timeout * 1e6])
        except Unavailable:
            if self._conn.on_unavailable == "deny":
                return OPEN
            return self.local.state(name, key, config, now)
        return BreakerState(_text(reply))

    # -- the public twins ------------------------------------------------------------------
    def acquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        """Ask to make a call; a refused permit carries `retry_after`."""
        return self._conn.run(self._acquire(name, key, config, now))

    def record(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        """Report a permitted call's outcome; returns the state entered, if any."""
        return self._conn.run(self._record(name, key, config, now, permit, outcome))

    def state(self, name: str, key: str, config: BreakerConfig, now: float) -> BreakerState:
        """The circuit's current state (OPEN while Redis is down in "deny" mode)."""
        return self._conn.run(self._state(name, key, config, now))

    def reset(self, name: str, key: str | None = None) -> None:
        """Close one circuit, or every circuit of `name` (found with SCAN) when `key` is None."""
        self.local.reset(name, key)
        conn = self._conn
        try:
            client = conn.sync_client()
            if key is not None:
                client.delete(*self.keys(name, key))
                return
            prefix, suffix = conn.prefix.translate(_GLOB), name.translate(_GLOB)
            for pattern in (f"{{{prefix}:*}}:cb:{suffix}", f"{{{prefix}:*}}:cb:{suffix}:w"):
                found = list(client.scan_iter(match=pattern, count=500))
                if found:
                    client.delete(*found)
        except conn.errors as exc:
            conn.failed(exc)
        else:
            conn.succeeded()

    async def aacquire(self, name: str, key: str, config: BreakerConfig, now: float) -> Permit:
        """Async twin of `acquire`."""
        return await self._conn.arun(self._acquire(name, key, config, now))

    async def arecord(
        self,
        name: str,
        key: str,
        config: BreakerConfig,
        now: float,
        permit: Permit,
        outcome: Outcome,
    ) -> BreakerState | None:
        """Async twin of `record`."""
        return await self._conn.arun(self._record(name, key, config, now, permit, outcome))


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
