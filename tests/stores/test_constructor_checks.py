"""Every public store, saver, sink and ledger checks each constructor argument.

A wrong type raises TypeError, a wrong value ValueError; the message starts with the argument's
name and says what is allowed. None of these needs a server: constructors that connect lazily
must refuse bad arguments (and accept good ones) without connecting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentmw.events import Event
from agentmw.stores import (
    BatchedSink,
    JsonlEventSink,
    PostgresEventSink,
    PostgresSaver,
    PostgresUsageSink,
    RedisBreakerStore,
    RedisConcurrencyStore,
    RedisLedger,
    RedisRateLimitStore,
    SqliteEventSink,
    SqliteSaver,
    SqliteUsageSink,
)
from agentmw.testing import capture_events

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: a connection would fail
CLOSED_PG = "host=127.0.0.1 port=1 dbname=none connect_timeout=1"

# (argument, a value of the wrong type, a value of the right type that is not allowed)
_REDIS_COMMON: list[tuple[str, Any, Any]] = [
    ("prefix", 7, "a{b}"),
    ("prefix", None, ""),
    ("on_unavailable", True, "maybe"),
    ("socket_timeout", "0.5", 0),
    ("socket_connect_timeout", [1], -1.0),
    ("retry_interval", "1", float("inf")),
]
_BATCHING: list[tuple[str, Any, Any]] = [
    ("batch_size", 1.5, 0),
    ("flush_interval", "0.5", 0),
    ("max_queue", 10.0, 0),
    ("put_timeout", "0", -1),
]
_PG_PREFIX: list[tuple[str, Any, Any]] = [("table_prefix", 3, "Bad-Prefix; DROP TABLE x")]


def _redis(cls: type[Any], extra: Sequence[tuple[str, Any, Any]]) -> list[Any]:
    def build(**kwargs: Any) -> Any:
        return cls(kwargs.pop("client_or_url", CLOSED_REDIS), **kwargs)

    rows = [("client_or_url", 42, "http://127.0.0.1:6379"), *_REDIS_COMMON, *extra]
    return [(cls.__name__, build, *row) for row in rows]


def _sqlite_sink(cls: type[Any]) -> list[Any]:
    def build(tmp: Path, **kwargs: Any) -> Any:
        return cls(kwargs.pop("path", tmp / "sink.db"), **kwargs)

    rows = [("path", 3, ""), ("path", b"x.db", ":memory:"), *_BATCHING]
    return [(cls.__name__, build, *row) for row in rows]


def _pg_sink(cls: type[Any]) -> list[Any]:
    def build(**kwargs: Any) -> Any:
        return cls(kwargs.pop("conninfo", CLOSED_PG), **kwargs)

    rows = [("conninfo", 5432, "not a conninfo"), *_PG_PREFIX, *_BATCHING]
    return [(cls.__name__, build, *row) for row in rows]


def _jsonl(tmp: Path, **kwargs: Any) -> Any:
    return JsonlEventSink(kwargs.pop("path", tmp / "events.jsonl"), **kwargs)


def _sqlite_saver(tmp: Path, **kwargs: Any) -> Any:
    return SqliteSaver(kwargs.pop("path", tmp / "ck.db"), **kwargs)


def _pg_saver(**kwargs: Any) -> Any:
    return PostgresSaver(kwargs.pop("conninfo", CLOSED_PG), **kwargs)


CASES: list[Any] = [
    *_redis(RedisRateLimitStore, [("clock", 1.0, None)]),
    *_redis(RedisBreakerStore, [("ttl", "60", 0)]),
    *_redis(RedisLedger, [("ttl", "60", -5), ("hold_timeout", "60", 0)]),
    *_redis(RedisConcurrencyStore, [("lease_ttl", "10", 0), ("poll_interval", [1], -0.5)]),
    *_sqlite_sink(SqliteEventSink),
    *_sqlite_sink(SqliteUsageSink),
    *[("JsonlEventSink", _jsonl, *row) for row in [("path", 3, ""), ("fsync", 1, None)]],
    *[("JsonlEventSink", _jsonl, *row) for row in _BATCHING],
    ("SqliteSaver", _sqlite_saver, "path", 3.0, ""),
    ("SqliteSaver", _sqlite_saver, "synchronous", 1, "OFF"),
    ("PostgresSaver", _pg_saver, "conninfo", object(), "host"),
    *[("PostgresSaver", _pg_saver, *row) for row in _PG_PREFIX],
    *_pg_sink(PostgresEventSink),
    *_pg_sink(PostgresUsageSink),
]


def _call(build: Callable[..., Any], tmp: Path, **kwargs: Any) -> Any:
    needs_tmp = build.__code__.co_varnames[:1] == ("tmp",)
    return build(tmp, **kwargs) if needs_tmp else build(**kwargs)


def _params(cases: list[Any]) -> list[Any]:
    return [pytest.param(*case, id=f"{case[0]}-{case[2]}") for case in cases]


@pytest.mark.parametrize(("store", "build", "arg", "wrong_type", "wrong_value"), _params(CASES))
def test_wrong_type_is_a_type_error(
    tmp_path: Path,
    store: str,
    build: Callable[..., Any],
    arg: str,
    wrong_type: Any,
    wrong_value: Any,
) -> None:
    with pytest.raises(TypeError, match=rf"^{arg} must be ") as info:
        _call(build, tmp_path, **{arg: wrong_type})
    assert type(wrong_type).__name__ in str(info.value)  # it says what it got
    assert list(tmp_path.iterdir()) == []  # refused before any file was created


@pytest.mark.parametrize(
    ("store", "build", "arg", "wrong_type", "wrong_value"),
    _params([c for c in CASES if c[4] is not None]),
)
def test_wrong_value_is_a_value_error(
    tmp_path: Path,
    store: str,
    build: Callable[..., Any],
    arg: str,
    wrong_type: Any,
    wrong_value: Any,
) -> None:
    with pytest.raises(ValueError, match=rf"^{arg} must be "):
        _call(build, tmp_path, **{arg: wrong_value})
    assert list(tmp_path.iterdir()) == []


def test_redis_type_error_lists_what_is_accepted() -> None:
    with pytest.raises(TypeError, match=r"redis://.*redis\.Redis.*redis\.asyncio\.Redis"):
        RedisLedger(b"redis://127.0.0.1")


def test_refused_urls_and_conninfo_are_not_echoed_with_secrets() -> None:
    with pytest.raises(ValueError, match="client_or_url") as info:
        RedisLedger("http://user:s3cret@127.0.0.1")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="conninfo") as info:
        PostgresSaver("password=s3cret oops")
    assert "s3cret" not in str(info.value)


def test_postgres_saver_accepts_pools_without_opening_them() -> None:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    sync_pool = ConnectionPool(CLOSED_PG, open=False)
    async_pool = AsyncConnectionPool(CLOSED_PG, open=False)
    assert PostgresSaver(sync_pool)._pool is sync_pool
    assert PostgresSaver(async_pool)._pool is async_pool
    assert sync_pool.closed
    with pytest.raises(TypeError, match=r"^conninfo must be .*ConnectionPool"):
        PostgresSaver(42)


def test_lazy_constructors_do_not_connect() -> None:
    started = time.monotonic()
    with capture_events() as events:
        stores: list[
            RedisRateLimitStore | RedisBreakerStore | RedisLedger | RedisConcurrencyStore
        ] = [
            RedisRateLimitStore(CLOSED_REDIS, socket_connect_timeout=5.0),
            RedisBreakerStore("rediss://127.0.0.1:1", ttl=60),
            RedisLedger("unix:///nonexistent.sock", on_unavailable="allow"),
            RedisConcurrencyStore(CLOSED_REDIS, lease_ttl=1, on_unavailable="deny"),
        ]
        saver = PostgresSaver(CLOSED_PG, table_prefix="never_created")
        sink = PostgresEventSink(CLOSED_PG)
    assert time.monotonic() - started < 1.0  # nothing waited on a connect timeout
    assert all(s.available for s in stores)  # no outage was seen: nothing was tried
    assert [s._conn._sync for s in stores] == [None] * 4
    assert saver._conn is None
    assert saver._aconn is None
    assert list(events) == []
    assert sink.written == 0
    assert sink.write_errors == 0
    sink.close()  # nothing queued: closing does not connect either
    assert sink.write_errors == 0


class _ListSink(BatchedSink[Event]):
    def replay(self, session_id: str | None = None) -> list[Event]:
        return []


class _Backend:
    def write(self, items: Sequence[Event]) -> None:
        pass

    def close(self) -> None:
        pass


_BATCHED = {"batch_size": 10, "flush_interval": 0.5, "max_queue": 100, "put_timeout": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "error", "arg"),
    [
        ({"backend": object(), "name": "x"}, TypeError, "backend"),
        ({"backend": _Backend(), "name": 3}, TypeError, "name"),
        ({"backend": _Backend(), "name": " "}, ValueError, "name"),
        ({"backend": _Backend(), "name": "x", "batch_size": True}, TypeError, "batch_size"),
    ],
)
def test_batched_sink_base_checks_its_arguments(
    kwargs: dict[str, Any], error: type[Exception], arg: str
) -> None:
    backend = kwargs.pop("backend")
    with pytest.raises(error, match=rf"^{arg} must be "):
        _ListSink(backend, **{**_BATCHED, **kwargs})


def test_good_arguments_are_accepted(tmp_path: Path) -> None:
    with (
        SqliteEventSink(tmp_path / "a" / "events.db", batch_size=1, put_timeout=0) as events,
        JsonlEventSink(tmp_path / "b" / "events.jsonl", fsync=True, flush_interval=0.01) as f,
    ):
        assert events.path.endswith("events.db")
        assert f.path.endswith("events.jsonl")
    saver = SqliteSaver(tmp_path / "ck.db", synchronous="FULL")
    assert saver.synchronous == "FULL"
    saver.close()
    store = RedisRateLimitStore(
        CLOSED_REDIS, prefix="team a", on_unavailable="deny", clock=time.time
    )
    assert store._conn.prefix == "team a"
    assert store._conn.on_unavailable == "deny"
    assert RedisLedger(CLOSED_REDIS, ttl=1).available
