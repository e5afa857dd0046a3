"""Quick per-turn cost of `Stack.default()` inside a session, sync and async (microseconds).

A development aid for checking a change on the hot path; `make bench` is the reference. Usage:

    python scripts/turn_cost.py [TURNS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from agentmw import Agent, ModelPricing, Stack, Usage, agent_turn, register_pricing

MODEL = "bench-model"
USAGE = Usage(input_tokens=100, output_tokens=20)


@agent_turn(model=MODEL)
def turn() -> Usage:
    return USAGE


@agent_turn(model=MODEL)
async def aturn() -> Usage:
    return USAGE


def _agent() -> Agent:
    stack = Stack.default(budget_usd=1_000_000, max_iterations=10_000_000, telemetry=True)
    return Agent("bench", stack=stack)


def sync_us(turns: int) -> float:
    with _agent().session():
        started = time.perf_counter()
        for _ in range(turns):
            turn()
        return (time.perf_counter() - started) / turns * 1e6


async def async_us(turns: int) -> float:
    async with _agent().session():
        started = time.perf_counter()
        for _ in range(turns):
            await aturn()
        return (time.perf_counter() - started) / turns * 1e6


def main() -> None:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    register_pricing(MODEL, ModelPricing(input_per_million=1, output_per_million=2))
    sync = statistics.median(sync_us(turns) for _ in range(7))
    asyn = statistics.median(asyncio.run(async_us(turns)) for _ in range(7))
    print(f"Stack.default() per turn: sync {sync:.2f} us, async {asyn:.2f} us ({turns} turns x 7)")


if __name__ == "__main__":
    main()
