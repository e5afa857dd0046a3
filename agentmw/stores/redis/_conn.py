"""Plumbing shared by the Redis stores: lazy clients, scripts, plans, outages and their events.

A store operation is written once, as a *plan*: a generator that yields the `Command`s to send
(script, keys, args), reads each reply, and catches `Unavailable` to decide without Redis (the
store's `on_unavailable` fallback). `Connection.run` and `Connection.arun` drive a plan on the
sync or the async client; they differ only in `call(...)` vs `await call(...)`, and share the
outage bookkeeping (skip while down, `store.unavailable` / `store.available` once per flip).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections.abc import Generator, Sequence
from contextlib import closing
from types import ModuleType
from typing import Any, Literal, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

from agentmw._validate import check_choice, check_match, check_number
from agentmw.classify import exception_type
from agentmw.core.context import current_session
from agentmw.events import emit_global

OnUnavailable = Literal["allow", "deny"]
T = TypeVar("T")
URL_SCHEMES = ("redis", "rediss", "unix")
_COUNTS = tuple(str(n).encode() for n in range(16))  # EVALSHA's key count, as sent
PREFIX = r"[^{}]+"  # a hash tag is `{prefix:key}`: braces in the prefix would break the slot


class Command(NamedTuple):
    """One script call of a plan: the Lua source, its KEYS and its ARGV."""

    lua: str
    keys: Sequence[str]
    args: Sequence[Any]


class Unavailable(Exception):
    """Thrown into a plan when Redis is down (known, or it just failed): decide without it."""


# A plan yields Commands, is sent each reply, and returns the operation's answer.
Plan = Generator[Command, Any, T]

# Internal machinery of the Redis stores; nothing here is public API.
__all__: list[str] = []


def check_url(client_or_url: Any, redis: ModuleType) -> str | None:
    """The URL of `client_or_url` (None for a client); a wrong type or scheme is refused."""
    if isinstance(client_or_url, (redis.Redis, redis.asyncio.Redis)):
        return None
    what = "a redis://, rediss:// or unix:// URL, a redis.Redis or a redis.asyncio.Redis"
    if not isinstance(client_or_url, str):
        raise TypeError(f"client_or_url must be {what}, got {type(client_or_url).__name__}")
    scheme = urlsplit(client_or_url).scheme
    if scheme not in URL_SCHEMES:  # the URL itself is not repeated: it may hold a password
        raise ValueError(f"client_or_url must be {what}, got a string with scheme {scheme!r}")
    return client_or_url


def require_redis() -> ModuleType:
    """Import redis-py (an optional dependency), or explain which extra provides it."""
    try:
        import redis
        import redis.asyncio  # the async client lives in a submodule
    except ImportError as exc:  # pragma: no cover - the dev environment has redis installed
        raise ImportError(
            "the Redis stores need redis-py: install the extra with `pip install 'agentmw[redis]'`"
        ) from exc
    return redis


class Connection:
    """One store's view of Redis: its clients, its registered scripts and whether Redis is up.

    After a failure, Redis is not asked again for `retry_interval` seconds (callers use the
    fallback at once instead of each waiting for a timeout); the first success after that flips
    the store back. Each flip emits `store.unavailable` / `store.available` once.
    """

    def __init__(
        self,
        client_or_url: Any,
        *,
        store: str,
        prefix: str,
        on_unavailable: str,
        socket_timeout: float,
        socket_connect_timeout: float,
        retry_interval: float,
    ) -> None:
        redis = require_redis()
        self._url: str | None = check_url(client_or_url, redis)
        self._sync: Any = client_or_url if isinstance(client_or_url, redis.Redis) else None
        self._async: Any = client_or_url if isinstance(client_or_url, redis.asyncio.Redis) else None
        self.store = store
        self.prefix = check_match("prefix", prefix, PREFIX, "a non-empty string without braces")
        mode = check_choice("on_unavailable", on_unavailable, ("allow", "deny"))
        self.on_unavailable: OnUnavailable = "deny" if mode == "deny" else "allow"
        self.socket_timeout = check_number("socket_timeout", socket_timeout, above=0)
        self.socket_connect_timeout = check_number(
            "socket_connect_timeout", socket_connect_timeout, above=0
        )
        self.retry_interval = check_number("retry_interval", retry_interval, above=0)
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._noscript: type[BaseException] = redis.exceptions.NoScriptError
        self._shas: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        # An asyncio client's connections belong to one event loop: a URL store keeps one client
        # (and its scripts) per loop, so `asyncio.run` twice, or loops in threads, just work.
        self._loops: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self.available = True
        self._retry_at = 0.0

    # -- clients and scripts ---------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }

    def sync_client(self) -> Any:
        """The sync client (created from the URL on first use)."""
        if self._sync is None:
            if self._url is None:
                raise TypeError(
                    f"{self.store} was given a redis.asyncio.Redis: its sync methods need a "
                    "redis.Redis (or pass a URL to get both)"
                )
            with self._lock:
                if self._sync is None:
                    self._sync = require_redis().Redis.from_url(self._url, **self._options())
        return self._sync

    def _async_entry(self) -> tuple[Any, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            if self._async is not None:
                client = self._async
            elif self._url is None:
                raise TypeError(
                    f"{self.store} was given a sync redis.Redis: its async methods need a "
                    "redis.asyncio.Redis (or pass a URL to get both)"
                )
            else:
                client = require_redis().asyncio.Redis.from_url(self._url, **self._options())
            entry = self._loops[loop] = (client, {})
        return entry

    def async_client(self) -> Any:
        """The async client for the running event loop (created from the URL on first use)."""
        return self._async_entry()[0]

    def call(self, command: Command, *, asynchronous: bool = False) -> Any:
        """Send `command` on the sync client (its reply) or the async one (an awaitable)."""
        return self.script(command.lua, asynchronous=asynchronous)(
            keys=command.keys, args=command.args
        )

    def script(self, lua: str, *, asynchronous: bool = False) -> Any:
        """`lua` registered on the sync or async client (EVALSHA, reloading on NOSCRIPT)."""
        if asynchronous:
            client, scripts = self._async_entry()
        else:
            scripts = self._scripts
            found = scripts.get(lua)
            if found is not None:
                return found
            client = self.sync_client()
        found = scripts.get(lua)
        if found is None:
            found = scripts[lua] = client.register_script(lua)
        return found

    def _sha(self, lua: str) -> bytes:
        sha = self._shas.get(lua)
        if sha is None:
            digest = hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest()
            sha = self._shas[lua] = digest.encode()
        return sha

    def encode(self, text: str) -> bytes:
        """`text` as the store's client would send it (its encoding): the hot path sends keys
        already encoded, which redis-py's encoder passes through as they are."""
        client = self._async if self._sync is None and self._async is not None else None
        # A URL store's clients share the URL's options: the sync one (created without
        # connecting) speaks for both.
        encoder = (client if client is not None else self.sync_client()).get_encoder()
        return cast(bytes, encoder.encode(text))

    def evalsha(self, lua: str, keys: Sequence[bytes], arg: bytes) -> Any:
        """One EVALSHA of `lua` with `keys` and the single argument `arg` on the sync client,
        loading the script on NOSCRIPT; the hot path of a store that drives no plan (no
        `Script` wrapper, no generator). Everything but the command's name is sent as bytes
        (keys from `encode`), which redis-py's encoder passes through. Errors are the caller's
        to handle (see `failed`)."""
        client = self._sync if self._sync is not None else self.sync_client()
        sha = self._sha(lua)
        count = _COUNTS[len(keys)] if len(keys) < len(_COUNTS) else str(len(keys)).encode()
        try:
            return client.execute_command("EVALSHA", sha, count, *keys, arg)
        except self._noscript:
            client.script_load(lua)
            return client.execute_command("EVALSHA", sha, count, *keys, arg)

    async def aevalsha(self, lua: str, keys: Sequence[bytes], arg: bytes) -> Any:
        """Async twin of `evalsha`, on the async client of the running event loop."""
        client = self._async_entry()[0]
        sha = self._sha(lua)
        count = _COUNTS[len(keys)] if len(keys) < len(_COUNTS) else str(len(keys)).encode()
        try:
            return await client.execute_command("EVALSHA", sha, count, *keys, arg)
        except self._noscript:
            await client.script_load(lua)
            return await client.execute_command("EVALSHA", sha, count, *keys, arg)

    def tag(self, key: str) -> str:
        """The hash tag of `key`: every Redis key derived from it lands in one cluster slot."""
        return f"{{{self.prefix}:{key}}}"

    # -- plans -------------------------------------------------------------------------------
    def run(self, plan: Plan[T]) -> T:
        """Drive `plan` on the sync client and return its answer (see the module doc)."""
        steps = self._steps(plan)
        try:
            command = next(steps)
            while True:
                try:
                    reply = self.call(command)
                except BaseException as exc:  # `_steps` tells an outage from an error to raise
                    command = steps.throw(exc)
                else:
                    command = steps.send(reply)
        except StopIteration as done:
            return cast(T, done.value)

    async def arun(self, plan: Plan[T]) -> T:
        """Async twin of `run`, on the async client of the running event loop."""
        steps = self._steps(plan)
        try:
            command = next(steps)
            while True:
                try:
                    reply = await self.call(command, asynchronous=True)
                except BaseException as exc:  # cancellation too: the plan is closed in `_steps`
                    command = steps.throw(exc)
                else:
                    command = steps.send(reply)
        except StopIteration as done:
            return cast(T, done.value)

    def _steps(self, plan: Plan[Any]) -> Plan[Any]:
        # The decisions both drivers share: skip while down, note failures and recoveries, and
        # throw `Unavailable` into the plan so it answers without Redis. A driver sends each
        # reply in here, or throws the client's error in.
        with closing(plan):  # a plan cut short still runs its `finally` (the ledger's pending)
            try:
                command = next(plan)
            except StopIteration as done:
                return done.value  # answered at once, without Redis
            if not self.skip():
                try:
                    while True:
                        command = plan.send((yield command))
                except StopIteration as done:
                    self.succeeded()
                    return done.value
                except self.errors as exc:
                    self.failed(exc)
            try:
                plan.throw(Unavailable())
            except StopIteration as done:
                return done.value
        raise RuntimeError("a Redis plan must return once it is told Redis is unavailable")

    # -- availability ----------------------------------------------------------------------
    def skip(self) -> bool:
        """True while Redis is known to be down and not yet due for another try."""
        return not self.available and time.monotonic() < self._retry_at

    def failed(self, exc: BaseException) -> None:
        """Note an outage; the first failure after a success emits `store.unavailable`."""
        with self._lock:
            was_up = self.available
            self.available = False
            self._retry_at = time.monotonic() + self.retry_interval
        if was_up:
            self._emit("store.unavailable", error=exception_type(exc))

    def succeeded(self) -> None:
        """Note that Redis answered; after an outage this emits `store.available`."""
        if self.available:
            return
        with self._lock:
            was_down, self.available = not self.available, True
        if was_down:
            self._emit("store.available")

    def _emit(self, name: str, **extra: Any) -> None:
        data = {"store": self.store, "prefix": self.prefix, "mode": self.on_unavailable, **extra}
        session = current_session()
        if session is not None:
            session.emit(name, data=data)
        else:
            emit_global(name, data=data)
