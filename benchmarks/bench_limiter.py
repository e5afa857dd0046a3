"""RateLimit per turn: Redis reserve + reconcile against a bare INCRBY, and the in-memory async
acquire against aiolimiter's, each pair interleaved in one run (median of rounds).

A turn through a Redis-backed `RateLimit(rpm=..., tpm=...)` reserves a request and its estimated
tokens, then reconciles with the real usage (fewer tokens than estimated, as with a
`max_tokens` estimate). Each round times a block of turns next to a block of plain INCRBY round
trips on the same client, so the ratio survives a loaded machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ._timing import table

URL = os.environ.get("AGENTMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROUNDS = 9
BLOCK = 400
ABLOCK = 20_000


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _block(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


async def _ablock(fn: Callable[[], Awaitable[Any]], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - start) / number * 1e6


def _pairs(rounds: list[tuple[float, float]]) -> tuple[float, float, float]:
    return (
        statistics.median(p[0] for p in rounds),
        statistics.median(p[1] for p in rounds),
        statistics.median(p[1] / p[0] for p in rounds),
    )


def _redis() -> str:
    if not _reachable():
        return "Skipped: Redis is not reachable at 127.0.0.1:6379.\n"
    import redis
    import redis.asyncio

    from agentmw.middleware import RateLimit
    from agentmw.stores import RedisRateLimitStore
    from agentmw.usage import Usage

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(URL)
    limit = RateLimit(rpm=10**9, tpm=10**12, store=RedisRateLimitStore(client, prefix=prefix))
    estimate, actual = Usage(input_tokens=100, output_tokens=500), Usage(100, 40)
    counter = f"{{{prefix}:incr}}"

    def turn() -> None:
        limit.acquire(usage=estimate, key="m").reconcile(actual)

    async def abody() -> list[tuple[float, float]]:
        aclient = redis.asyncio.Redis.from_url(URL)
        alimit = RateLimit(rpm=10**9, tpm=10**12, store=RedisRateLimitStore(aclient, prefix=prefix))

        async def aturn() -> None:
            await (await alimit.aacquire(usage=estimate, key="a")).areconcile(actual)

        async def aincr() -> None:
            await aclient.incrby(counter, 1)

        await _ablock(aturn, 50)
        await _ablock(aincr, 50)
        out = [(await _ablock(aincr, BLOCK), await _ablock(aturn, BLOCK)) for _ in range(ROUNDS)]
        await aclient.aclose()
        return out

    try:
        _block(turn, 50)
        sync = [
            (_block(lambda: client.incrby(counter, 1), BLOCK), _block(turn, BLOCK))
            for _ in range(ROUNDS)
        ]
        asyn = asyncio.run(abody())
    finally:
        found = list(client.scan_iter(match=f"{{{prefix}:*"))
        if found:
            client.delete(*found)
    rows = []
    verdicts = []
    for path, rounds in (("sync", sync), ("async", asyn)):
        incr, both, ratio = _pairs(rounds)
        verdicts.append(f"{path} {ratio:.2f}")
        rows.append([path, f"{incr:.1f}", f"{both:.1f}", f"**{ratio:.2f}**"])
    return (
        table(["path", "INCRBY (µs)", "reserve + reconcile (µs)", "ratio"], rows)
        + f"\n\nTarget: reserve + reconcile <= 1.3x a bare INCRBY ({', '.join(verdicts)}); "
        f"median of {ROUNDS} interleaved rounds of {BLOCK} turns, one client, local Redis.\n"
    )


def _memory() -> str:
    from agentmw.middleware import RateLimit

    try:
        from aiolimiter import AsyncLimiter
    except ImportError:
        ours = asyncio.run(_amemory_only(RateLimit(rpm=10**9)))
        return (
            f"agentmw `RateLimit.aacquire` (uncontended, in memory): {ours:.2f} µs. "
            "aiolimiter is not installed (`pip install 'agentmw[bench]'`): no comparison.\n"
        )
    limiter, peer = RateLimit(rpm=10**9), None

    async def body() -> list[tuple[float, float]]:
        nonlocal peer
        peer = AsyncLimiter(10**9, 60)
        acquire = limiter.aacquire
        await _ablock(acquire, 1000)
        await _ablock(peer.acquire, 1000)
        return [
            (await _ablock(peer.acquire, ABLOCK), await _ablock(acquire, ABLOCK))
            for _ in range(ROUNDS)
        ]

    theirs, ours, ratio = _pairs(asyncio.run(body()))
    rows = [
        ["aiolimiter `AsyncLimiter.acquire`", f"{theirs:.2f}", "1.00"],
        ["agentmw `RateLimit.aacquire`", f"{ours:.2f}", f"**{ratio:.2f}**"],
    ]
    return (
        table(["uncontended async acquire", "µs per call", "vs aiolimiter"], rows)
        + f"\n\nTarget: no slower than aiolimiter (ratio <= 1.00); median of {ROUNDS} "
        f"interleaved rounds of {ABLOCK:,} acquires on one event loop.\n"
    )


async def _amemory_only(limiter: Any) -> float:
    await _ablock(limiter.aacquire, 1000)
    return statistics.median([await _ablock(limiter.aacquire, ABLOCK) for _ in range(ROUNDS)])


def run() -> str:
    started = time.perf_counter()
    redis_part = _redis()
    memory_part = _memory()
    asyncio.set_event_loop(None)
    return "\n".join(
        [
            "## RateLimit per turn (Redis round trips, in-memory async acquire)",
            "",
            "### Redis `RateLimit(rpm=, tpm=)`: reserve + reconcile vs INCRBY",
            "",
            redis_part,
            "### In-memory async acquire vs aiolimiter",
            "",
            memory_part,
            f"_({time.perf_counter() - started:.0f}s)_",
        ]
    )


if __name__ == "__main__":
    print(run())
