"""RedisRateLimitStore: a refund rides on the key's next round trip (one round trip per turn).

Round trips are counted on the wire: every command the store's clients send to the real Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from agentmw.middleware import RateLimit
from agentmw.stores import RedisRateLimitStore
from agentmw.stores.gcra import Rate
from agentmw.stores.redis._limiter_lua import ADJUST, RESERVE
from agentmw.testing import capture_events
from agentmw.usage import Usage

TPM = Rate("tpm", 10.0, 1000.0)
Wire = Callable[[RedisRateLimitStore], list[str]]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"fold-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    found = list(client.scan_iter(match=f"{{{name}:*"))
    if found:
        client.delete(*found)
    client.close()


@pytest.fixture
def wire(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Wire:
    """`wire(store)`: every command `store`'s own clients send to the real Redis, in order
    ("reserve" / "adjust" for the limiter's scripts, else the command's name), one entry per
    round trip. Both scripts are loaded first, so no NOSCRIPT retry shows up."""
    client = redis.Redis.from_url(redis_url)
    names = {client.script_load(RESERVE): "reserve", client.script_load(ADJUST): "adjust"}
    client.close()
    watched: list[tuple[RedisRateLimitStore, list[str]]] = []

    def note(client: Any, args: tuple[Any, ...]) -> None:
        for store, sent in watched:
            conn = store._conn
            if client is conn._sync or any(client is c for c, _ in conn._loops.values()):
                name = str(args[0]).upper()
                sha = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
                sent.append(names.get(sha, "?") if name == "EVALSHA" else name)

    sync_execute: Any = redis.Redis.execute_command
    async_execute: Any = redis.asyncio.Redis.execute_command

    def execute(self: Any, *args: Any, **options: Any) -> Any:
        note(self, args)
        return sync_execute(self, *args, **options)

    async def aexecute(self: Any, *args: Any, **options: Any) -> Any:
        note(self, args)
        return await async_execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", execute)
    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", aexecute)

    def watch(store: RedisRateLimitStore) -> list[str]:
        sent: list[str] = []
        watched.append((store, sent))
        return sent

    return watch


def test_a_turn_is_one_round_trip_and_the_refund_reaches_the_fleet(
    redis_url: str, prefix: str, mode: str, wire: Wire
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    other = RedisRateLimitStore(redis_url, prefix=prefix)  # another replica
    limit = RateLimit(rpm=10**6, tpm=1200, store=store)  # tpm: 20 tokens/s, burst 1200
    sent = wire(store)
    estimate, actual = Usage(input_tokens=100, output_tokens=400), Usage(100, 40)

    async def turn() -> None:
        if mode == "async":
            await (await limit.aacquire(usage=estimate, key="m")).areconcile(actual)
        else:
            limit.acquire(usage=estimate, key="m").reconcile(actual)

    asyncio.run(turn())
    assert sent == ["reserve"]  # the refund of 360 tokens waits for the next round trip
    tpm = limit.rates["tpm"]
    assert store.pending("m") == [(tpm, -360.0)]
    # Meanwhile the fleet sees the estimate spent: 500 of 1200, so 800 more wait ~5 s.
    assert 4.5 < other.wait_time("m", [(tpm, 800.0)], 0.0) <= 5.0
    asyncio.run(turn())
    assert sent == ["reserve", "reserve"]  # the refund rode on the second reservation
    # The first turn's real use (140) and the second's estimate (500): 640, so 700 more wait
    # ~7 s (without the refund, 1000 used: ~25 s).
    assert store.pending("m") == [(tpm, -360.0)]
    assert 6.5 < other.wait_time("m", [(tpm, 700.0)], 0.0) <= 7.0
    if mode == "async":
        asyncio.run(store.aflush())
    else:
        store.flush()
    assert sent == ["reserve", "reserve", "adjust"]
    assert store.pending("m") == []
    # Flushed: 280 used of 1200 (less what refilled meanwhile), so 920 fit at once.
    assert other.wait_time("m", [(tpm, 920.0)], 0.0) == 0.0
    assert other.wait_time("m", [(tpm, 1000.0)], 0.0) > 0.0


def test_a_charge_is_sent_at_once_with_the_waiting_refunds(
    redis_url: str, prefix: str, mode: str, wire: Wire
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    sent = wire(store)

    async def body() -> None:
        adjust = store.aadjust if mode == "async" else None
        for delta in (-100.0, 30.0):  # a refund waits, a charge goes now and takes it along
            if adjust:
                await adjust("k", [(TPM, delta)], 0.0)
            else:
                store.adjust("k", [(TPM, delta)], 0.0)

    store.acquire("k", [(TPM, 500.0)], 0.0)
    asyncio.run(body())
    assert sent == ["reserve", "adjust"]
    assert store.pending("k") == []
    # 500 - 100 + 30 = 430 used of 1000: 570 fit, 580 do not.
    assert store.wait_time("k", [(TPM, 570.0)], 0.0) == 0.0
    assert store.wait_time("k", [(TPM, 580.0)], 0.0) > 0.0


def test_a_refund_on_a_dimension_the_next_call_does_not_demand_is_applied(
    redis_url: str, prefix: str
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    rpm = Rate("rpm", 1.0, 5.0)
    assert store.acquire("k", [(rpm, 1.0), (TPM, 900.0)], 0.0) == 0.0
    store.adjust("k", [(TPM, -800.0)], 0.0)  # deferred
    assert store.acquire("k", [(rpm, 1.0)], 0.0) == 0.0  # carries the tpm refund
    assert store.pending("k") == []
    other = RedisRateLimitStore(redis_url, prefix=store._conn.prefix)
    assert other.wait_time("k", [(TPM, 900.0)], 0.0) == 0.0  # 100 used of 1000


def test_every_turn_is_one_command_on_the_wire(
    redis_url: str, prefix: str, mode: str, wire: Wire
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    limit = RateLimit(rpm=600, tpm=6000, store=store)  # tpm: 100 tokens/s, burst 6000
    sent = wire(store)
    estimate, actual = Usage(input_tokens=100, output_tokens=900), Usage(100, 100)

    async def turns() -> None:
        for _ in range(5):
            if mode == "async":
                await (await limit.aacquire(usage=estimate, key="m")).areconcile(actual)
            else:
                limit.acquire(usage=estimate, key="m").reconcile(actual)

    asyncio.run(turns())
    assert sent == ["reserve"] * 5  # each reconcile rode on the next turn's reservation
    tpm = limit.rates["tpm"]
    assert store.pending("m") == [(tpm, -800.0)]  # only the last turn's refund still waits
    # Four turns of 200 real tokens and one of 1000 estimated: 1800 of 6000 spent (less the
    # refill meanwhile), so 4200 fit at once and 4400 do not.
    other = RedisRateLimitStore(redis_url, prefix=prefix)
    assert other.wait_time("m", [(tpm, 4200.0)], 0.0) == 0.0
    assert other.wait_time("m", [(tpm, 4400.0)], 0.0) > 0.0


def test_a_refused_connection_decides_locally_with_the_waiting_refunds(mode: str) -> None:
    store = RedisRateLimitStore("redis://127.0.0.1:1/0", prefix="p", retry_interval=60)
    rpm = Rate("rpm", 1.0, 5.0)
    store.local.acquire("k", [(TPM, 900.0)], 0.0)  # the fallback already saw 900 spent
    store.adjust("k", [(TPM, -800.0)], 0.0)  # deferred until the next round trip

    async def acquire() -> float:
        if mode == "async":
            return await store.aacquire("k", [(rpm, 1.0), (TPM, 600.0)], 0.0)
        return store.acquire("k", [(rpm, 1.0), (TPM, 600.0)], 0.0)

    with capture_events() as events:
        assert asyncio.run(acquire()) == 0.0  # Redis refused: the local GCRA admitted it
        assert asyncio.run(acquire()) > 0.0  # skipped while down; 700 used, 600 more wait
    assert not store.available
    assert store.pending("k") == []  # the refund went to the fallback, not lost
    assert store.local.wait_time("k", [(TPM, 300.0)], 0.0) == 0.0  # 700 of 1000 used
    assert [e.name for e in events] == ["store.unavailable"]
