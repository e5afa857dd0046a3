"""A subprocess of tests/stores/test_redis_concurrency.py: one replica under a shared cap.

Usage: python redis_concurrency_worker.py <role> <url> <prefix> [args...]; prints JSON lines.
- `calls <sync|async> <calls> <cap>`: make `calls` capped calls from `WORKERS` threads or tasks;
  inside each call, count the holders in Redis and note (enter, exit) times.
- `hold <lease_ttl>`: take one slot, print {"held": true}, then sleep until killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from typing import Any

import redis
import redis.asyncio

from agentmw import Stack, agent_turn
from agentmw.middleware import Concurrency
from agentmw.stores import RedisConcurrencyStore

WORKERS = 8
KEY = "shared"


def calls(url: str, prefix: str, mode: str, count: int, cap: int) -> dict[str, Any]:
    store = RedisConcurrencyStore(url, prefix=prefix, lease_ttl=5.0, poll_interval=0.05)
    stack = Stack([Concurrency(cap, key=KEY, store=store)])
    probe = f"{{{prefix}:probe}}:inside"  # holders inside right now, fleet-wide
    seen: list[int] = []
    spans: list[tuple[float, float]] = []
    todo = iter(range(count))
    lock = threading.Lock()

    def pause() -> float:
        return random.uniform(0.001, 0.008)

    if mode == "sync":
        client = redis.Redis.from_url(url)

        @agent_turn(stack=stack)
        def call() -> None:
            enter = time.time()
            seen.append(int(client.incr(probe)))
            time.sleep(pause())
            client.decr(probe)
            spans.append((enter, time.time()))

        def run() -> None:
            while True:
                with lock:
                    if next(todo, None) is None:
                        return
                call()

        threads = [threading.Thread(target=run) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main() -> None:
            client = redis.asyncio.Redis.from_url(url)

            @agent_turn(stack=stack)
            async def acall() -> None:
                enter = time.time()
                seen.append(int(await client.incr(probe)))
                await asyncio.sleep(pause())
                await client.decr(probe)
                spans.append((enter, time.time()))

            async def run() -> None:
                while next(todo, None) is not None:
                    await acall()

            await asyncio.gather(*(run() for _ in range(WORKERS)))
            await client.aclose()

        asyncio.run(main())
    return {"seen": seen, "spans": spans}


def hold(url: str, prefix: str, lease_ttl: float) -> None:
    store = RedisConcurrencyStore(url, prefix=prefix, lease_ttl=lease_ttl)
    cap = Concurrency(1, store=store)
    with cap.slot(KEY):
        print(json.dumps({"held": True}), flush=True)
        time.sleep(3600)  # renewing in the background until SIGKILL


if __name__ == "__main__":
    role, url, prefix, *rest = sys.argv[1:]
    if role == "calls":
        print(json.dumps(calls(url, prefix, rest[0], int(rest[1]), int(rest[2]))))
    else:
        hold(url, prefix, float(rest[0]))
