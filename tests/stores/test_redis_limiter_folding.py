"""RedisRateLimitStore: a refund rides on the key's next round trip (one round trip per turn)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentmw.middleware import RateLimit
from agentmw.stores import RedisRateLimitStore
from agentmw.stores.gcra import Rate
from agentmw.usage import Usage

TPM = Rate("tpm", 10.0, 1000.0)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"fold-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    found = list(client.scan_iter(match=f"{{{name}:*"))
    if found:
        client.delete(*found)
    client.close()


def counted(store: RedisRateLimitStore) -> list[str]:
    """Record the script of every command the store sends (one entry per round trip)."""
    sent: list[str] = []
    conn = store._conn
    call = conn.call

    def spy(command: Any, *, asynchronous: bool = False) -> Any:
        sent.append("reserve" if "gmatch" in command.lua else "adjust")
        return call(command, asynchronous=asynchronous)

    conn.call = spy  # type: ignore[method-assign]
    return sent


def test_a_turn_is_one_round_trip_and_the_refund_reaches_the_fleet(
    redis_url: str, prefix: str, mode: str
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    other = RedisRateLimitStore(redis_url, prefix=prefix)  # another replica
    limit = RateLimit(rpm=10**6, tpm=1200, store=store)  # tpm: 20 tokens/s, burst 1200
    sent = counted(store)
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
    redis_url: str, prefix: str, mode: str
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    sent = counted(store)

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
