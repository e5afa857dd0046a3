"""Plumbing shared by the Redis stores: lazy clients, scripts, outage detection and its events."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from types import ModuleType
from typing import Any, Literal

from agentmw.classify import exception_type
from agentmw.core.context import current_session
from agentmw.events import emit_global

OnUnavailable = Literal["allow", "deny"]

# Internal machinery of the Redis stores; nothing here is public API.
__all__: list[str] = []


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


def _positive(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{label} must be a number > 0, got {value!r}")
    return float(value)


def optional_ttl(ttl: Any) -> float | None:
    """Validate a store's `ttl` option: a number of seconds > 0, or None."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number > 0 or None, got {ttl!r}")
    return float(ttl)


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
        if on_unavailable not in ("allow", "deny"):
            raise ValueError(f"on_unavailable must be 'allow' or 'deny', got {on_unavailable!r}")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces, got {prefix!r}")
        self.store = store
        self.prefix = prefix
        self.on_unavailable: OnUnavailable = on_unavailable  # type: ignore[assignment]
        self.socket_timeout = _positive("socket_timeout", socket_timeout)
        self.socket_connect_timeout = _positive("socket_connect_timeout", socket_connect_timeout)
        self.retry_interval = _positive("retry_interval", retry_interval)
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._url: str | None = None
        self._sync: Any = None
        self._async: Any = None
        if isinstance(client_or_url, str):
            self._url = client_or_url
        elif isinstance(client_or_url, redis.asyncio.Redis):
            self._async = client_or_url
        elif isinstance(client_or_url, redis.Redis):
            self._sync = client_or_url
        else:
            raise TypeError(
                "client_or_url must be a redis:// URL, a redis.Redis or a redis.asyncio.Redis, "
                f"got {type(client_or_url).__name__}"
            )
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

    def tag(self, key: str) -> str:
        """The hash tag of `key`: every Redis key derived from it lands in one cluster slot."""
        return f"{{{self.prefix}:{key}}}"

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
