"""A session of 100,000 turns stays bounded and `summary()` stays O(models) (issue 19)."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

from agentmw import Agent, ModelPricing, Stack, Usage, agent_turn, register_pricing
from agentmw.core import AgentRegistry

TURNS = 100_000
register_pricing("long-a", ModelPricing(input_per_million=1, output_per_million=2))
register_pricing("long-b", ModelPricing(input_per_million=3, output_per_million=4))
USAGE = Usage(input_tokens=10, output_tokens=2)


@agent_turn(model="long-a")
def turn_a() -> Usage:
    return USAGE


@agent_turn(model="long-b")
def turn_b() -> Usage:
    return USAGE


@agent_turn(model="long-a")
async def aturn() -> Usage:
    return USAGE


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def _summary_peak(session: Any) -> tuple[int, dict[str, Any]]:
    """The bytes `summary()` allocates at its peak, and the summary."""
    gc.collect()
    tracemalloc.start()
    try:
        summary = session.summary()
        return tracemalloc.get_traced_memory()[1], summary
    finally:
        tracemalloc.stop()


def _agent() -> Agent:
    stack = Stack.default(budget_usd=1_000_000, max_iterations=10_000_000)
    return Agent("long", stack=stack, registry=AgentRegistry())


def test_a_100000_turn_session_is_bounded_and_its_summary_is_o_models() -> None:
    with _agent().session() as session:
        for _ in range(1000):
            turn_a()
        turn_b()
        early_blocks = _blocks()
        early_peak, early = _summary_peak(session)
        for _ in range(TURNS - 1001):
            turn_a()
        late_blocks = _blocks()
        late_peak, late = _summary_peak(session)
        assert len(session.events) == 1000  # the event buffer keeps the most recent 1,000
    assert late["turns"] == TURNS
    assert sorted(late["models"]) == ["long-a", "long-b"]
    assert late["models"]["long-a"]["calls"] == TURNS - 1
    assert late["events"]["turn.completed"] == TURNS
    assert late["usage"]["input_tokens"] == 10 * TURNS
    # Bounded: 99,000 more turns keep no per-turn objects (the counts are ints).
    assert late_blocks - early_blocks < 1000, (early_blocks, late_blocks)
    # O(models): the summary's work does not grow with the turns.
    assert sorted(early) == sorted(late)
    assert late_peak <= early_peak + 1024, (early_peak, late_peak)


async def test_a_100000_turn_async_session_is_bounded() -> None:
    async with _agent().session() as session:
        for _ in range(1000):
            await aturn()
        early_blocks = _blocks()
        early_peak, _ = _summary_peak(session)
        for _ in range(TURNS - 1000):
            await aturn()
        late_blocks = _blocks()
        late_peak, late = _summary_peak(session)
    assert late["turns"] == TURNS
    assert list(late["models"]) == ["long-a"]
    assert late_blocks - early_blocks < 1000, (early_blocks, late_blocks)
    assert late_peak <= early_peak + 1024, (early_peak, late_peak)
