"""The Redis stores' plans and their two drivers, against a scripted fake client (no server).

Each store operation is one plan; `Connection.run` and `Connection.arun` must give the same
answers, send the same commands and keep the same outage bookkeeping.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from typing import Any

import pytest
import redis

from agentmw.errors import RateLimitedError
from agentmw.stores import RedisBreakerStore, RedisLedger, RedisRateLimitStore
from agentmw.stores.circuit import BreakerConfig, BreakerState, Permit
from agentmw.stores.gcra import Rate
from agentmw.stores.redis._conn import Command, Connection, Plan, Unavailable
from agentmw.stores.redis._limiter_lua import pack_reserve
from agentmw.testing import capture_events

URL = "redis://127.0.0.1:1/0"  # never reached: the fake below answers instead
RPM = Rate("rpm", 1.0, 2.0)


class FakeRedis:
    """Answers each script call with the next item of `replies` (an exception is raised)."""

    def __init__(self, conn: Connection, replies: list[Any]) -> None:
        self.replies = replies
        self.sent: list[tuple[list[str], list[Any]]] = []
        conn.script = self.script  # type: ignore[method-assign]

    def _answer(self, keys: Any, args: Any) -> Any:
        self.sent.append((list(keys), list(args)))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def script(self, lua: str, *, asynchronous: bool = False) -> Callable[..., Any]:
        if not asynchronous:
            return lambda keys, args: self._answer(keys, args)

        async def call(keys: Any, args: Any) -> Any:
            await asyncio.sleep(0)
            return self._answer(keys, args)

        return call


def run(conn: Connection, plan: Plan[Any], mode: str) -> Any:
    return asyncio.run(conn.arun(plan)) if mode == "async" else conn.run(plan)


def test_both_drivers_send_the_same_commands_and_read_the_reply(mode: str) -> None:
    store = RedisRateLimitStore(URL, prefix="p")
    fake = FakeRedis(store._conn, [0, 1_500_000])
    assert run(store._conn, store._decide("k", [(RPM, 1.0)], 0.0, True), mode) == 0.0
    assert run(store._conn, store._decide("k", [(RPM, 1.0)], 0.0, False), mode) == 1.5
    # One binary argument: the record flag, then increment, tolerance and refund in µs.
    assert fake.sent == [
        (["{p:k}:rl:cooldown", "{p:k}:rl:rpm"], [pack_reserve(True, [1e6, 2e6, 0.0])]),
        (["{p:k}:rl:cooldown", "{p:k}:rl:rpm"], [pack_reserve(False, [1e6, 2e6, 0.0])]),
    ]
    assert pack_reserve(True, [1e6, 2e6, 0.0]) == b"\x01" + struct.pack("<3d", 1e6, 2e6, 0.0)


def test_an_outage_is_reported_once_and_skipped_until_retry(mode: str) -> None:
    store = RedisBreakerStore(URL, on_unavailable="allow", retry_interval=0.05)
    config = BreakerConfig(failure_threshold=1)
    conn = store._conn
    fake = FakeRedis(conn, [redis.ConnectionError("down"), [1, 0, 0, 0, 0]])
    with capture_events() as events:
        local = run(conn, store._acquire("n", "k", config, 0.0), mode)
        assert local.allowed  # the process-local breaker decided
        assert not store.available
        skipped = run(conn, store._state("n", "k", config, 0.0), mode)
        assert skipped is BreakerState.CLOSED
        assert len(fake.sent) == 1  # skipped while down: Redis was not asked again
        conn._retry_at = 0.0  # the retry interval has passed
        permit = run(conn, store._acquire("n", "k", config, 0.0), mode)
    assert permit == Permit(True)
    assert store.available
    assert [(e.name, e.data.get("error")) for e in events] == [
        ("store.unavailable", "redis.exceptions.ConnectionError"),
        ("store.available", None),
    ]


def test_deny_mode_refuses_without_redis(mode: str) -> None:
    store = RedisRateLimitStore(URL, on_unavailable="deny")
    FakeRedis(store._conn, [TimeoutError("slow")])
    with capture_events(), pytest.raises(RateLimitedError, match="unreachable") as info:
        run(store._conn, store._decide("k", [(RPM, 1.0)], 0.0, True), mode)
    assert info.value.__suppress_context__  # the Unavailable signal is not shown as a cause


def test_flush_sends_each_key_and_falls_back_when_redis_fails(mode: str) -> None:
    store = RedisRateLimitStore(URL, prefix="p")
    fake = FakeRedis(store._conn, [0, redis.ConnectionError("down")])
    store.adjust("a", [(RPM, -1.0)], 0.0)
    store.adjust("b", [(RPM, -2.0)], 0.0)
    store.adjust("c", [(RPM, -3.0)], 0.0)
    assert fake.sent == []  # refunds wait for a round trip
    with capture_events():
        run(store._conn, store._flush(), mode)
    assert fake.sent == [(["{p:a}:rl:rpm"], [1e6, -1.0]), (["{p:b}:rl:rpm"], [1e6, -2.0])]
    assert [store.pending(k) for k in "abc"] == [[], [], []]
    assert not store.available  # b and c went to the process-local fallback instead


def test_cooldown_in_the_past_sends_nothing(mode: str) -> None:
    store = RedisRateLimitStore(URL, clock=lambda: 100.0)
    fake = FakeRedis(store._conn, [])
    assert run(store._conn, store._cooldown("k", 99.0), mode) is None
    assert fake.sent == []
    assert store.available


def test_ledger_replays_outage_spend_first(mode: str) -> None:
    book = RedisLedger(URL, on_unavailable="allow", ttl=60)
    fake = FakeRedis(book._conn, [redis.ConnectionError("down")])
    with capture_events():
        offline = run(book._conn, book._add("k", Decimal("0.5"), None), mode)
    assert offline.added
    assert book.pending == {"k": Decimal("0.5")}
    book._conn._retry_at = 0.0
    fake.replies = [[1, 500_000_000], [1, 800_000_000]]
    with capture_events():
        result = run(book._conn, book._add("k", Decimal("0.3"), Decimal(1)), mode)
    assert result.total == Decimal("0.8")
    assert book.pending == {}
    assert [args for _, args in fake.sent[1:]] == [
        [500_000_000, "", ""],  # the replayed outage spend, without a limit
        [300_000_000, 1_000_000_000, "60000"],
    ]


def test_failed_replay_keeps_the_pending_spend(mode: str) -> None:
    book = RedisLedger(URL, on_unavailable="allow")
    book._keep_pending({"a": 1, "b": 2})
    fake = FakeRedis(book._conn, [[1, 1], redis.ConnectionError("down")])
    with capture_events():
        spent = run(book._conn, book._spent("a"), mode)
    assert spent == Decimal("0")  # "a" reached Redis, but no total was read back
    assert fake.sent[0][0] == ["{agentmw:a}:ledger"]
    assert book._pending == {"b": 2}  # "a" was written; "b" is kept for the next try


def test_a_programming_error_propagates_and_still_restores_pending(mode: str) -> None:
    book = RedisLedger(redis.asyncio.Redis() if mode == "sync" else redis.Redis())
    book._keep_pending({"a": 7})
    with pytest.raises(TypeError, match="need a redis"):
        run(book._conn, book._spent("a"), mode)
    assert book._pending == {"a": 7}
    assert book.available  # not an outage


def test_a_plan_that_ignores_the_outage_is_a_clear_error() -> None:
    conn = RedisLedger(URL)._conn
    FakeRedis(conn, [redis.ConnectionError("down")])

    def stubborn() -> Plan[int]:
        while True:
            with suppress(Unavailable):
                yield Command("return 1", [], [])

    with capture_events(), pytest.raises(RuntimeError, match="must return"):
        conn.run(stubborn())
