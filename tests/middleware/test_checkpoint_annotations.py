"""A checkpointed result must match its return annotation: refused when saved, not on resume."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agentmw import Agent, Stack, agent_tool
from agentmw.middleware import Checkpoint
from agentmw.stores import InMemorySaver


class Ticket(BaseModel):
    id: int


async def _run(mode: str, fn: Callable[..., Any], *args: object) -> Any:
    return fn(*args) if mode == "sync" else await fn(*args)


@pytest.mark.parametrize("returned", ["not a number", {"id": "x"}])
async def test_a_result_that_contradicts_the_annotation_is_refused_at_save(
    mode: str, returned: object
) -> None:
    def lookup(key: str) -> int:
        return returned  # type: ignore[return-value]

    async def alookup(key: str) -> int:
        return returned  # type: ignore[return-value]

    tool = agent_tool(lookup if mode == "sync" else alookup)
    saver = InMemorySaver()
    agent = Agent("w", stack=Stack([Checkpoint(saver)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pydantic serializer warning either
        with agent.session("t1"), pytest.raises(TypeError) as info:
            await _run(mode, tool, "a")
    message = str(info.value)
    assert "checkpoint step 1 (tool 'lookup'" in message or "(tool 'alookup')" in message
    assert f"returned a {type(returned).__qualname__}" in message
    assert "its return annotation is int" in message
    # Nothing unresumable was stored: the step is kept as failed (it runs again on resume).
    assert [(r.status, r.result) for r in saver.get_steps("t1")] == [("failed", None)]


async def test_matching_results_replay_as_their_annotation(mode: str) -> None:
    runs: list[int] = []

    def open_ticket(n: int) -> Ticket:
        runs.append(n)
        return Ticket(id=n)

    async def aopen_ticket(n: int) -> Ticket:
        return open_ticket(n)

    tool = agent_tool(open_ticket if mode == "sync" else aopen_ticket)
    saver = InMemorySaver()
    agent = Agent("w", stack=Stack([Checkpoint(saver)]))
    with agent.session("t2"):
        first = await _run(mode, tool, 7)
    with agent.session("t2"):
        again = await _run(mode, tool, 7)
    assert first == again == Ticket(id=7)
    assert isinstance(again, Ticket)
    assert runs == [7]
