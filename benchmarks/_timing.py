"""Small timing helpers shared by the benchmark modules."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def per_call_us(fn: Callable[[], Any], *, number: int = 20_000, repeat: int = 7) -> float:
    """Median microseconds per call of `fn()` over `repeat` runs of `number` calls."""
    for _ in range(min(number, 1000)):
        fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs)


def aper_call_us(
    fn: Callable[[], Awaitable[Any]], *, number: int = 20_000, repeat: int = 7
) -> float:
    """Async twin of `per_call_us` (one event loop, awaited sequentially)."""

    async def body() -> float:
        for _ in range(min(number, 1000)):
            await fn()
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                await fn()
            runs.append((time.perf_counter() - start) / number * 1e6)
        return statistics.median(runs)

    return asyncio.run(body())


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
