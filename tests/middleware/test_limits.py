"""Limits: turn, tool, token and cost ceilings at their boundaries."""

from __future__ import annotations

from typing import Any

import pytest

from agentmw import Agent, LimitExceededError, MaxIterationsExceededError, ModelPricing, Usage
from agentmw.middleware import Limits
from agentmw.pricing import PricingTable
from agentmw.testing import Reply, ScriptedModel, capture_events

from ._helpers import tool, turn

REPLY = Reply("ok", Usage(100, 40))


async def test_max_turns_boundary(mode: str) -> None:
    agent = Agent("l", stack=[Limits(max_turns=2)])
    model = ScriptedModel([REPLY] * 5)
    with capture_events() as events, agent.session() as s:
        await turn(mode, s, model)
        await turn(mode, s, model)
        with pytest.raises(MaxIterationsExceededError) as info:
            await turn(mode, s, model)
    assert len(model.calls) == 2
    assert (info.value.limit, info.value.observed, info.value.ceiling) == ("max_turns", 3, 2)
    assert isinstance(info.value, LimitExceededError)
    assert events.named("limit.exceeded")[0].data["limit"] == "max_turns"


async def test_max_tool_calls_boundary(mode: str) -> None:
    agent = Agent("l", stack=[Limits(max_tool_calls=1)])
    calls: list[int] = []
    with agent.session() as s:
        await tool(mode, s, calls.append, 1)
        with pytest.raises(LimitExceededError) as info:
            await tool(mode, s, calls.append, 2)
    assert calls == [1]
    assert info.value.limit == "max_tool_calls"


@pytest.mark.parametrize(
    ("option", "ceiling", "allowed"),
    [
        # Each turn uses 100 in, 40 out: the ceiling is reached exactly, then passed.
        ("max_input_tokens", 200, 3),
        ("max_output_tokens", 80, 3),
        ("max_total_tokens", 280, 3),
        ("max_input_tokens", 199, 2),
        ("max_total_tokens", 140, 2),
    ],
)
async def test_token_limits_refuse_the_next_call_once_exceeded(
    mode: str, option: str, ceiling: int, allowed: int
) -> None:
    options: dict[str, Any] = {option: ceiling}
    agent = Agent("l", stack=[Limits(**options)])
    model = ScriptedModel([REPLY] * 5)
    with agent.session() as s:
        for _ in range(allowed):
            await turn(mode, s, model)
        with pytest.raises(LimitExceededError) as info:
            await turn(mode, s, model)
    assert len(model.calls) == allowed
    assert info.value.limit == option
    assert info.value.ceiling == ceiling


async def test_cost_limit(mode: str) -> None:
    table = PricingTable({"m": ModelPricing(input_per_million=10_000, output_per_million=0)})
    agent = Agent("l", stack=[Limits(max_cost_usd="1.5")], pricing=table)
    model = ScriptedModel([REPLY] * 5)  # $1 per turn
    with agent.session() as s:
        await turn(mode, s, model, model="m")
        await turn(mode, s, model, model="m")
        with pytest.raises(LimitExceededError) as info:
            await turn(mode, s, model, model="m")
    assert info.value.limit == "max_cost_usd"
    assert len(model.calls) == 2


def test_counts_are_per_session() -> None:
    agent = Agent("l", stack=[Limits(max_turns=1)])
    model = ScriptedModel([REPLY] * 2)
    for _ in range(2):
        with agent.session() as s:
            s.run_turn(model)
    assert len(model.calls) == 2


def test_options_validated() -> None:
    with pytest.raises(ValueError, match="max_turns must be an int >= 0"):
        Limits(max_turns=-1)
    with pytest.raises(TypeError, match=r"max_tool_calls must be an int, got float 2\.0"):
        Limits(max_tool_calls=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_cost_usd must be a finite amount >= 0"):
        Limits(max_cost_usd=-1)


async def test_turn_and_tool_limits_continue_after_a_checkpoint_resume(mode: str) -> None:
    # Replayed steps never pass through Limits (Checkpoint sits outside it), yet they count.
    from agentmw import Session, Stack
    from agentmw.middleware import Checkpoint
    from agentmw.stores import InMemorySaver

    saver = InMemorySaver()
    agent = Agent("writer", stack=Stack([Checkpoint(saver), Limits(max_turns=3, max_tool_calls=1)]))

    def answer(prompt: str) -> str:
        return f"re: {prompt}"

    def lookup(key: str) -> str:
        return key.upper()

    async def run(session: Session, prompt: str) -> None:
        if mode == "sync":
            session.run_turn(answer, prompt, model="m")
        else:
            await session.arun_turn(answer, prompt, model="m")

    async def use_tool(session: Session) -> None:
        if mode == "sync":
            session.run_tool("lookup", lookup, "k")
        else:
            await session.arun_tool("lookup", lookup, "k")

    async def first_run() -> None:
        with agent.session("thread-1") as first:
            await run(first, "a")
            await use_tool(first)
            await run(first, "b")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        await first_run()

    with agent.session("thread-1") as resumed:
        await run(resumed, "a")  # replayed
        await use_tool(resumed)  # replayed
        await run(resumed, "b")  # replayed
        await run(resumed, "c")  # live: the third turn
        with pytest.raises(MaxIterationsExceededError):
            await run(resumed, "d")
        with pytest.raises(LimitExceededError):
            await use_tool(resumed)
    assert (resumed.iterations, resumed.tool_calls) == (3, 1)
