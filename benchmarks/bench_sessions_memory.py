"""Session memory: what 1,000 finished sessions of 100 turns retain in the agent registry, the
bytes per live session with 10,000 concurrent asyncio sessions, and a 100,000-turn session.

Measured with `tracemalloc` (allocated Python memory, net of a warm-up session), each in a
fresh registry, with `Stack.default()` and the agent's default event sink (a ring buffer of
the most recent 1,000 events, shared by the agent's sessions).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

from agentmw import Agent, ModelPricing, Stack, Usage, agent_turn, register_pricing
from agentmw.core import AgentRegistry

from ._timing import table

MIB = 1024 * 1024
TARGET_FINISHED_MIB = 10.0
TARGET_LIVE_KIB = 6.0
USAGE = Usage(input_tokens=100, output_tokens=20)
MODEL = "bench-memory-model"


def _agent() -> Agent:
    register_pricing(MODEL, ModelPricing(input_per_million=1, output_per_million=2))
    stack = Stack.default(budget_usd=1_000_000, max_iterations=10_000_000)
    return Agent("memory", stack=stack, registry=AgentRegistry())


@agent_turn(model=MODEL)
def _turn() -> Usage:
    return USAGE


@agent_turn(model=MODEL)
async def _aturn() -> Usage:
    return USAGE


def _retained(work: Callable[[], object]) -> tuple[int, object]:
    """Bytes still allocated after `work()` (its result kept alive), and that result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, kept
    finally:
        tracemalloc.stop()


def finished_sessions(sessions: int = 1000, turns: int = 100) -> int:
    """Bytes retained by `sessions` finished sessions of `turns` turns (registry and sink)."""
    agent = _agent()

    def work() -> AgentRegistry:
        for _ in range(sessions):
            with agent.session():
                for _ in range(turns):
                    _turn()
        return agent.registry

    with agent.session():  # warm-up: caches, the ring buffer's first events
        _turn()
    retained, _ = _retained(work)
    return retained


def live_sessions(sessions: int = 10_000, turns: int = 10) -> int:
    """Bytes per live session: `sessions` asyncio sessions, each open after `turns` turns."""
    agent = _agent()

    ready_count = [0]

    async def one(ready: asyncio.Event, release: asyncio.Event) -> None:
        async with agent.session():
            for _ in range(turns):
                await _aturn()
            ready_count[0] += 1
            if ready_count[0] == sessions:
                ready.set()
            await release.wait()

    async def main() -> int:
        ready, release = asyncio.Event(), asyncio.Event()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tasks = [asyncio.create_task(one(ready, release)) for _ in range(sessions)]
            await ready.wait()
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        release.set()
        await asyncio.gather(*tasks)
        return used // sessions

    with agent.session():
        _turn()
    return asyncio.run(main())


def long_session(turns: int = 100_000) -> tuple[int, int]:
    """Bytes retained by one session after 1,000 and after `turns` turns (it stays bounded)."""
    agent = _agent()
    sizes = []
    with agent.session() as session:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for done in range(1, turns + 1):
                _turn()
                if done in (1000, turns):
                    gc.collect()
                    sizes.append(tracemalloc.get_traced_memory()[0] - before)
        finally:
            tracemalloc.stop()
        assert session.iterations == turns
    return sizes[0], sizes[1]


TARGET_LOAD_RATIO = 1.5


def _turns_with_yields(agent: Agent, sessions: int, turns: int) -> float:
    """Microseconds per turn: `sessions` open asyncio sessions taking `turns` turns each,
    yielding to the event loop after every turn (so the sessions interleave)."""

    async def main() -> float:
        go, release = asyncio.Event(), asyncio.Event()
        all_open, all_done = asyncio.Event(), asyncio.Event()
        opened, done = [0], [0]

        async def one() -> None:
            async with agent.session():
                opened[0] += 1
                if opened[0] == sessions:
                    all_open.set()
                await go.wait()
                for _ in range(turns):
                    await _aturn()
                    await asyncio.sleep(0)
                done[0] += 1
                if done[0] == sessions:
                    all_done.set()
                await release.wait()  # still open: exits are not timed

        tasks = [asyncio.create_task(one()) for _ in range(sessions)]
        await all_open.wait()  # every session is open before the clock starts
        start = time.perf_counter()
        go.set()
        await all_done.wait()
        elapsed = time.perf_counter() - start
        release.set()
        await asyncio.gather(*tasks)
        return elapsed / (sessions * turns) * 1e6

    return asyncio.run(main())


def turn_cost_under_load(sessions: int = 10_000, turns: int = 10) -> tuple[float, float]:
    """Per-turn µs with one session and with `sessions` concurrent ones (median of 3 each,
    interleaved; opening and closing the sessions is not timed)."""
    agent = _agent()
    with agent.session():
        _turn()
    single, loaded = [], []
    for _ in range(3):
        single.append(_turns_with_yields(agent, 1, sessions * turns // 10))
        loaded.append(_turns_with_yields(agent, sessions, turns))
    return statistics.median(single), statistics.median(loaded)


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def run() -> str:
    """One Markdown section."""
    finished = finished_sessions() / MIB
    live = live_sessions() / 1024
    early, late = long_session()
    alone, loaded = turn_cost_under_load()
    load_ratio = loaded / alone
    rows = [
        [
            "1,000 finished sessions of 100 turns, retained",
            f"{finished:.2f} MiB",
            f"≤ {TARGET_FINISHED_MIB:.0f} MiB ({_mark(finished <= TARGET_FINISHED_MIB)})",
        ],
        [
            "10,000 live asyncio sessions (10 turns each), per session",
            f"{live:.2f} KiB",
            f"≤ {TARGET_LIVE_KIB:.0f} KiB ({_mark(live <= TARGET_LIVE_KIB)})",
        ],
        ["one session, after 1,000 turns", f"{early / 1024:.1f} KiB", ""],
        [
            "one session, after 100,000 turns",
            f"{late / 1024:.1f} KiB",
            "bounded (about the 1,000-turn figure)",
        ],
    ]
    return "\n".join(
        [
            "## Session memory (`bench_sessions_memory`)",
            "",
            "`tracemalloc` bytes with `Stack.default()`; finished sessions keep their summary "
            "in the registry, not their event buffers.",
            "",
            table(["what", "memory", "target"], rows),
            "",
            "Per-turn cost under load: async turns through `Stack.default()`, each followed by "
            "`await asyncio.sleep(0)` so the sessions interleave; one session of 10,000 turns "
            "against 10,000 open sessions of 10 turns each (median of 3 interleaved runs; opening "
            "and closing the sessions is not timed).",
            "",
            table(
                ["sessions", "µs per turn"],
                [["1", f"{alone:.2f}"], ["10,000 concurrent", f"{loaded:.2f}"]],
            ),
            "",
            f"10,000 sessions / 1 session: **{load_ratio:.2f}** (target <= {TARGET_LOAD_RATIO}: "
            f"{'met' if load_ratio <= TARGET_LOAD_RATIO else 'MISSED'}).",
        ]
    )


if __name__ == "__main__":
    print(run())
