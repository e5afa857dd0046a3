"""Checkpoint on streamed turns and tools: the chunks are stored (JSON) and replayed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentmw import Agent, Usage, agent_tool, agent_turn
from agentmw.middleware import Checkpoint
from agentmw.pricing import PricingTable
from agentmw.stores import InMemorySaver, SqliteSaver
from agentmw.testing import capture_events

PRICES = PricingTable({"m": {"input_per_million": 1000, "output_per_million": 2000}})
ran: list[str] = []


def _usage(chunk: Any) -> Usage | None:
    return Usage(input_tokens=100, output_tokens=20) if chunk == "." else None


@agent_turn(model="m", usage=_usage)
def tell(topic: str) -> Iterator[str]:
    ran.append(topic)
    yield from (topic, " is", " fine", ".")


@agent_turn(model="m", name="tell", usage=_usage)
async def atell(topic: str) -> AsyncIterator[str]:
    ran.append(topic)
    for chunk in (topic, " is", " fine", "."):
        yield chunk


@dataclasses.dataclass
class Hit:
    url: str
    rank: int


@agent_tool
def hits(q: str) -> Iterator[Hit]:
    ran.append(q)
    yield Hit(f"https://x/{q}", 1)
    yield Hit(f"https://y/{q}", 2)


@agent_tool(name="hits")
async def ahits(q: str) -> AsyncIterator[Hit]:
    ran.append(q)
    yield Hit(f"https://x/{q}", 1)
    yield Hit(f"https://y/{q}", 2)


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return InMemorySaver() if request.param == "memory" else SqliteSaver(tmp_path / "c.db")


async def consume(agent: Agent, mode: str, take: int | None = None) -> tuple[list[Any], Any]:
    """One session: a streamed turn (the first `take` chunks, or all), then a streamed tool."""
    if mode == "sync":
        with agent.session(thread_id="s") as s:
            out: list[Any] = []
            stream: Any = tell("sky")
            for chunk in stream:
                out.append(chunk)
                if take is not None and len(out) == take:
                    break
            stream.close()
            out.append(list(hits("q")))
            return out, (s.summary(), s.cost_usd)
    async with agent.session(thread_id="s") as s:
        out = []
        astream: Any = atell("sky")
        async for chunk in astream:
            out.append(chunk)
            if take is not None and len(out) == take:
                break
        await astream.aclose()
        out.append([h async for h in ahits("q")])
        return out, (s.summary(), s.cost_usd)


async def test_a_streamed_step_replays_its_chunks_usage_and_cost(saver: Any, mode: str) -> None:
    agent = Agent("w", stack=[Checkpoint(saver)], pricing=PRICES)
    ran.clear()
    first, (summary1, cost1) = await consume(agent, mode)
    assert first == ["sky", " is", " fine", ".", [Hit("https://x/q", 1), Hit("https://y/q", 2)]]
    assert ran == ["sky", "q"]
    records = saver.get_steps("s")
    assert [(r.kind, r.status, r.result, r.chunks) for r in records] == [
        ("turn", "completed", None, '["sky"," is"," fine","."]'),
        (
            "tool",
            "completed",
            None,
            '[{"url":"https://x/q","rank":1},{"url":"https://y/q","rank":2}]',
        ),
    ]
    assert records[0].usage == Usage(input_tokens=100, output_tokens=20)
    assert records[0].cost_usd == Decimal("0.14")
    ran.clear()
    with capture_events() as events:
        second, (summary2, cost2) = await consume(agent, mode)
    assert ran == []  # nothing was called: the chunks came from the checkpoint
    assert second == first
    assert type(second[-1][0]) is Hit  # typed chunks come back as their annotation says
    assert summary2["usage"] == summary1["usage"]
    assert summary2["usage"]["input_tokens"] == 100
    assert (cost1, cost2) == (Decimal("0.14"), Decimal("0.14"))
    assert summary2["turns"] == 1
    replayed = [e.data["checkpoint_step"] for e in events if e.name == "checkpoint.replayed"]
    assert replayed == [1, 2]


async def test_a_consumer_that_stops_early_stores_what_it_took(saver: Any, mode: str) -> None:
    agent = Agent("w", stack=[Checkpoint(saver)], pricing=PRICES)
    ran.clear()
    first, _ = await consume(agent, mode, take=2)
    assert first[:2] == ["sky", " is"]
    (turn, _tool) = saver.get_steps("s")
    assert (turn.status, turn.chunks) == ("completed", '["sky"," is"]')
    ran.clear()
    second, _ = await consume(agent, mode, take=2)
    assert second == first
    assert ran == []


async def test_a_stream_that_fails_is_recorded_failed_and_runs_again(saver: Any, mode: str) -> None:
    fail = [False, True]

    @agent_tool(name="feed")
    def feed() -> Iterator[int]:
        yield 1
        if fail.pop():
            raise ConnectionError("dropped")
        yield 2

    @agent_tool(name="feed")
    async def afeed() -> AsyncIterator[int]:
        yield 1
        if fail.pop():
            raise ConnectionError("dropped")
        yield 2

    agent = Agent("w", stack=[Checkpoint(saver)])

    async def run() -> list[int]:
        if mode == "sync":
            with agent.session(thread_id="f"):
                return list(feed())
        async with agent.session(thread_id="f"):
            return [c async for c in afeed()]

    with pytest.raises(ConnectionError):
        await run()
    assert [(r.status, r.chunks) for r in saver.get_steps("f")] == [("failed", None)]
    assert await run() == [1, 2]
    assert [(r.status, r.chunks) for r in saver.get_steps("f")] == [("completed", "[1,2]")]
    assert await run() == [1, 2]  # replayed: `fail` would be empty otherwise
    assert fail == []


async def test_a_streamed_step_is_written_ahead(saver: Any, mode: str) -> None:
    seen: list[Any] = []

    @agent_tool(name="watch")
    def watch() -> Iterator[str]:
        seen.extend((r.status, r.chunks) for r in saver.get_steps("w"))
        yield "a"

    @agent_tool(name="watch")
    async def awatch() -> AsyncIterator[str]:
        seen.extend((r.status, r.chunks) for r in saver.get_steps("w"))
        yield "a"

    agent = Agent("w", stack=[Checkpoint(saver)])
    if mode == "sync":
        with agent.session(thread_id="w"):
            assert list(watch()) == ["a"]
    else:
        async with agent.session(thread_id="w"):
            assert [c async for c in awatch()] == ["a"]
    assert seen == [("started", "[]")]


async def test_unstorable_chunks_name_the_step_and_keep_it_failed(mode: str) -> None:
    saver = InMemorySaver()

    @agent_tool(name="opaque")
    def opaque() -> Iterator[object]:
        yield object()

    @agent_tool(name="opaque")
    async def aopaque() -> AsyncIterator[object]:
        yield object()

    agent = Agent("w", stack=[Checkpoint(saver)])

    async def run() -> None:
        if mode == "sync":
            with agent.session(thread_id="o"):
                list(opaque())
        else:
            async with agent.session(thread_id="o"):
                [c async for c in aopaque()]

    with pytest.raises(TypeError, match=r"checkpoint step 1 \(tool 'opaque'\)"):
        await run()
    assert [r.status for r in saver.get_steps("o")] == ["failed"]
