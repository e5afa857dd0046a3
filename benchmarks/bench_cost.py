"""Budget + Limits + RateLimit overhead, late-turn cost, and the limiter vs aiolimiter."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentmw import Agent, ModelPricing, Usage
from agentmw.middleware import Budget, Limits, RateLimit
from agentmw.pricing import PricingTable

from ._timing import aper_call_us, per_call_us, table

USAGE = Usage(100, 20)
PRICES = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=2)})


def _fn(*_: Any, **__: Any) -> Usage:
    return USAGE


async def _afn(*_: Any, **__: Any) -> Usage:
    return USAGE


def _layers() -> list[Any]:
    return [
        Budget(1_000_000, enforce=True),
        Limits(max_turns=10**9, max_total_tokens=10**12),
        RateLimit(rpm=10**9, tpm=10**12),
    ]


def _overhead() -> list[list[Any]]:
    rows = []
    bare, full = Agent("b", stack=[], pricing=PRICES), Agent("f", stack=_layers(), pricing=PRICES)
    with bare.session() as s0, full.session() as s1:
        base = per_call_us(lambda: s0.run_turn(_fn, model="m"))
        with_layers = per_call_us(lambda: s1.run_turn(_fn, model="m"))
    rows.append(["sync", f"{base:.1f}", f"{with_layers:.1f}", f"{with_layers - base:.1f}"])

    s2, s3 = bare.session(), full.session()
    s2.__enter__()
    s3.__enter__()
    abase = aper_call_us(lambda: s2.arun_turn(_afn, model="m"))
    afull = aper_call_us(lambda: s3.arun_turn(_afn, model="m"))
    s3.__exit__(None, None, None)  # last in, first out: the current session is s2's again
    s2.__exit__(None, None, None)
    rows.append(["async", f"{abase:.1f}", f"{afull:.1f}", f"{afull - abase:.1f}"])
    return rows


def _late_turn() -> str:
    agent = Agent("late", stack=_layers(), pricing=PRICES)
    with agent.session() as s:
        for _ in range(10):
            s.run_turn(_fn, model="m")
        early = per_call_us(lambda: s.run_turn(_fn, model="m"), number=10, repeat=50)
        while s.iterations < 10_000:
            s.run_turn(_fn, model="m")
        late = per_call_us(lambda: s.run_turn(_fn, model="m"), number=10, repeat=50)
    return f"{late / early:.2f}"


def _acquire_vs_aiolimiter() -> list[list[Any]]:
    limiter = RateLimit(rpm=10**9)
    ours = aper_call_us(lambda: limiter.aacquire(0))
    rows = [["agentmw RateLimit.aacquire", f"{ours:.2f}"]]
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:
        rows.append(["aiolimiter.AsyncLimiter.acquire", "skipped: aiolimiter not installed"])
        return rows
    holder: list[Any] = []

    async def acquire() -> None:
        if not holder:
            holder.append(AsyncLimiter(10**9, 60))
        await holder[0].acquire()

    theirs = aper_call_us(acquire)
    rows.append(["aiolimiter.AsyncLimiter.acquire", f"{theirs:.2f}"])
    return rows


def run() -> str:
    started = time.perf_counter()
    overhead = _overhead()
    ratio = _late_turn()
    acquire = _acquire_vs_aiolimiter()
    asyncio.set_event_loop(None)
    return "\n".join(
        [
            "## Cost and limits (Budget + Limits + RateLimit)",
            "",
            table(["path", "bare turn (µs)", "with the 3 layers (µs)", "overhead (µs)"], overhead),
            "",
            f"Turn 10,000 / turn 10 of one session: **{ratio}** (target <= 1.2).",
            "",
            table(["uncontended acquire", "µs per call"], acquire),
            "",
            f"_({time.perf_counter() - started:.0f}s)_",
        ]
    )


if __name__ == "__main__":
    print(run())
