"""Core overhead: the decorator with an empty stack and with 10 pass-through layers, vs the bare
call (sync and async), and the per-turn cost early and late in one long session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentmw import Agent, Call, Middleware, Stack, agent_turn
from agentmw.core.middleware import AsyncNext, Next

from ._timing import aper_call_us, per_call_us, table

TARGET_EMPTY_US = 2.0
TARGET_LAYER_US = 0.5
TARGET_TURN_RATIO = 1.2


class PassThrough(Middleware):
    """Overrides handle/ahandle and only calls the next layer (the worst case for linking)."""

    def handle(self, call: Call, call_next: Next) -> Any:
        return call_next(call)

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return await call_next(call)


def _bare() -> int:
    return 1


async def _abare() -> int:
    return 1


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _decorator_rows() -> list[list[Any]]:
    ten = Stack([PassThrough(name=f"p{i}") for i in range(10)])
    sync_empty = agent_turn(stack=Stack())(_bare)
    sync_ten = agent_turn(stack=ten)(_bare)
    async_empty = agent_turn(stack=Stack())(_abare)
    async_ten = agent_turn(stack=ten)(_abare)
    rows = []
    for label, bare, empty, layered, timer in (
        ("sync", _bare, sync_empty, sync_ten, per_call_us),
        ("async", _abare, async_empty, async_ten, aper_call_us),
    ):
        base = timer(bare)  # type: ignore[operator]
        over_empty = timer(empty) - base  # type: ignore[operator]
        per_layer = (timer(layered) - base - over_empty) / 10  # type: ignore[operator]
        rows.append(
            [
                label,
                f"{base:.3f}",
                f"{over_empty:.3f}",
                f"{per_layer:.3f}",
                f"{_mark(over_empty <= TARGET_EMPTY_US)} / {_mark(per_layer <= TARGET_LAYER_US)}",
            ]
        )
    return rows


def _turn_cost(session_turns: int, sample: int = 2000) -> float:
    """Median-free average µs per turn for `sample` turns after `session_turns` warm-up turns."""
    agent = Agent("bench", stack=Stack([PassThrough()]))
    turn = agent_turn(model="m")(_bare)
    with agent.session():
        for _ in range(session_turns - 1):
            turn()
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(sample):
                turn()
            runs.append((time.perf_counter() - start) / sample * 1e6)
    return min(runs)


def _session_rows() -> tuple[list[list[Any]], float]:
    early = _turn_cost(10)
    late = _turn_cost(10_000)
    ratio = late / early
    return [["10", f"{early:.3f}"], ["10,000", f"{late:.3f}"]], ratio


def run() -> str:
    """One Markdown section with both tables."""
    asyncio.set_event_loop_policy(None)
    rows = _decorator_rows()
    session_rows, ratio = _session_rows()
    return "\n".join(
        [
            "## Core overhead (`bench_core`)",
            "",
            f"Decorator overhead in µs per call, vs the bare call. Targets: empty stack ≤ "
            f"{TARGET_EMPTY_US} µs, each pass-through layer (overriding `handle`/`ahandle`) ≤ "
            f"{TARGET_LAYER_US} µs.",
            "",
            table(
                ["path", "bare call", "+ decorator, empty stack", "+ per layer (10)", "targets"],
                rows,
            ),
            "",
            "Per-turn cost inside one session (decorated turn, one pass-through layer, "
            "events, ledger). Target: turn 10,000 / turn 10 ≤ "
            f"{TARGET_TURN_RATIO}.",
            "",
            table(["turn", "µs per turn"], session_rows),
            "",
            f"Ratio turn 10,000 / turn 10: **{ratio:.2f}** ({_mark(ratio <= TARGET_TURN_RATIO)}).",
        ]
    )


if __name__ == "__main__":
    print(run())
