"""A subprocess of tests/stores/test_redis.py: one "replica" sharing state through Redis.

Usage: python redis_worker.py <role> <url> <prefix> <sync|async> [args...]; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from decimal import Decimal
from typing import Any

from agentmw import CircuitOpenError
from agentmw.middleware import CircuitBreaker, RateLimit
from agentmw.stores import RedisBreakerStore, RedisLedger, RedisRateLimitStore

WORKERS = 4


def limiter(url: str, prefix: str, mode: str, seconds: float) -> dict[str, Any]:
    """Hammer one key until `seconds` pass; report (wall time, tokens) of each admission."""
    store = RedisRateLimitStore(url, prefix=prefix)
    limit = RateLimit(rpm=600, tpm=6000, burst=0.02, store=store)  # 10 req/s, 100 tok/s
    admitted: list[tuple[float, int]] = []
    deadline = time.time() + seconds

    def tokens(i: int) -> int:
        return 5 + (i * 7) % 11

    def run(worker: int) -> None:
        i = worker
        while time.time() < deadline:
            limit.acquire(tokens(i), key="shared")
            admitted.append((time.time(), tokens(i)))
            i += WORKERS

    async def arun(worker: int) -> None:
        i = worker
        while time.time() < deadline:
            await limit.aacquire(tokens(i), key="shared")
            admitted.append((time.time(), tokens(i)))
            i += WORKERS

    if mode == "sync":
        threads = [threading.Thread(target=run, args=(w,)) for w in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main() -> None:
            await asyncio.gather(*(arun(w) for w in range(WORKERS)))

        asyncio.run(main())
    return {"admitted": admitted}


def breaker(url: str, prefix: str, mode: str, action: str) -> dict[str, Any]:
    """ "fail": two counted failures; "probe": try four calls and count the refusals."""
    cb = CircuitBreaker(
        "fleet",
        failure_threshold=4,
        recovery_timeout=30.0,
        store=RedisBreakerStore(url, prefix=prefix),
    )

    def broken() -> None:
        raise ConnectionError("provider down")

    async def abroken() -> None:
        raise ConnectionError("provider down")

    async def aok() -> str:
        return "ok"

    outcomes: list[str] = []
    for _ in range(2 if action == "fail" else 4):
        try:
            if mode == "sync":
                cb.call(broken if action == "fail" else (lambda: "ok"))
            else:
                asyncio.run(cb.acall(abroken if action == "fail" else aok))
            outcomes.append("ok")
        except CircuitOpenError:
            outcomes.append("refused")
        except ConnectionError:
            outcomes.append("failed")
    return {"outcomes": outcomes, "state": str(cb.state())}


def ledger(url: str, prefix: str, mode: str, limit: str) -> dict[str, Any]:
    """Add a cent at a time under one limit until refused; report the amounts added."""
    book = RedisLedger(url, prefix=prefix)
    cap, cent = Decimal(limit), Decimal("0.01")
    added: list[str] = []

    def run() -> None:
        while book.add("team", cent, limit=cap).added:
            added.append(str(cent))

    async def arun() -> None:
        while (await book.aadd("team", cent, limit=cap)).added:
            added.append(str(cent))

    if mode == "sync":
        threads = [threading.Thread(target=run) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main() -> None:
            await asyncio.gather(*(arun() for _ in range(WORKERS)))

        asyncio.run(main())
    return {"added": added}


def budget(url: str, prefix: str, mode: str, usd: str) -> dict[str, Any]:
    """Run capped turns on an enforced Budget sharing a RedisLedger until refused; count them."""
    from agentmw import Agent, BudgetExceededError, ModelPricing, Usage
    from agentmw.middleware import Budget
    from agentmw.pricing import PricingTable

    prices = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=2)})
    layer = Budget(usd, enforce=True, ledger=RedisLedger(url, prefix=prefix), name="fleet")
    agent = Agent("w", stack=[layer], pricing=prices)
    prompt = "x" * 400  # 100 input tokens: each turn's worst case is $0.0021
    ran: list[int] = []

    def call(prompt: str, *, max_tokens: int) -> Usage:
        time.sleep(0.001)
        return Usage(100, max_tokens)

    async def acall(prompt: str, *, max_tokens: int) -> Usage:
        await asyncio.sleep(0.001)
        return Usage(100, max_tokens)

    def run() -> None:
        with agent.session() as s:
            while True:
                try:
                    s.run_turn(call, prompt, model="m", max_tokens=1000)
                except BudgetExceededError:
                    return
                ran.append(1)

    async def arun() -> None:
        async with agent.session() as s:
            while True:
                try:
                    await s.arun_turn(acall, prompt, model="m", max_tokens=1000)
                except BudgetExceededError:
                    return
                ran.append(1)

    if mode == "sync":
        threads = [threading.Thread(target=run) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main() -> None:
            await asyncio.gather(*(arun() for _ in range(WORKERS)))

        asyncio.run(main())
    return {"ran": len(ran)}


if __name__ == "__main__":
    role, url, prefix, mode, *rest = sys.argv[1:]
    if role == "limiter":
        out = limiter(url, prefix, mode, float(rest[0]))
    elif role == "breaker":
        out = breaker(url, prefix, mode, rest[0])
    elif role == "budget":
        out = budget(url, prefix, mode, rest[0])
    else:
        out = ledger(url, prefix, mode, rest[0])
    print(json.dumps(out))
