"""A live session keeps one compact record per call, and reads back the same events.

When nothing came between a call's start and end record, the session's buffer keeps only the
end record, which carries the start time (`agentmw.events.Record`); a priced turn's record
keeps the `ModelPricing` that priced it instead of the `Decimal` cost. Every reader still gets
exactly the events the agent's ring buffer (which keeps every record) gives for the session,
and the same events a listener gets at emit time.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest

from agentmw import Agent, Event, Middleware, ModelPricing, Stack, Usage, agent_tool, agent_turn
from agentmw.core.call import Call
from agentmw.events import RingBufferEventSink, add_listener, remove_listener
from agentmw.pricing import PricingTable

USAGE = Usage(input_tokens=1000, output_tokens=200)
RATES = ModelPricing(input_per_million=3, output_per_million=15)


def _agent(stack: Stack | None = None, table: PricingTable | None = None) -> Agent:
    if table is None:
        table = PricingTable()
        table.register("pair-model", RATES)
    return Agent("pairs", stack=stack or Stack([]), pricing=table)


@agent_tool
def lookup(q: str) -> str:
    return q


@agent_tool
async def alookup(q: str) -> str:
    return q


@agent_turn(model="pair-model")
def turn() -> Usage:
    return USAGE


@agent_turn(model="pair-model")
async def aturn() -> Usage:
    return USAGE


@agent_turn(model="pair-model")
def turn_with_tool() -> Usage:
    lookup("inside")
    return USAGE


@agent_turn(model="pair-model")
async def aturn_with_tool() -> Usage:
    await alookup("inside")
    return USAGE


def _stored(session: Any) -> list[Any]:
    return list(session._log.items())


def _ring(agent: Agent, session_id: str) -> list[Event]:
    sink = agent.event_sink
    assert isinstance(sink, RingBufferEventSink)
    return [e for e in sink.events if e.session_id == session_id]


def _names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


def _run_sync(agent: Agent) -> Any:
    with agent.session() as session:
        turn()
        lookup("q")
        turn_with_tool()
        turn()
    return session


async def _run_async(agent: Agent) -> Any:
    async with agent.session() as session:
        await aturn()
        await alookup("q")
        await aturn_with_tool()
        await aturn()
    return session


EXPECTED = [
    "agent.started",
    "turn.started",
    "turn.completed",
    "tool.called",
    "tool.completed",
    "turn.started",
    "tool.called",
    "tool.completed",
    "turn.completed",
    "turn.started",
    "turn.completed",
    "agent.completed",
]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_pairs_read_back_as_the_ring_buffers_events(mode: str) -> None:
    agent = _agent()
    session = _run_sync(agent) if mode == "sync" else await _run_async(agent)
    events = session.events
    assert _names(events) == EXPECTED
    assert events == _ring(agent, session.id)  # the same values, `at` included
    stored = _stored(session)
    kinds = [(item[0], len(item)) if type(item) is tuple else item.name for item in stored]
    # One record per call: a completed record with its start time stands for its start too,
    # except the turn around a tool (the tool's record came between its start and end).
    assert kinds == [
        ("agent.started", 7), ("turn.completed", 10), ("tool.completed", 8),
        ("turn.started", 6), ("tool.completed", 8), ("turn.completed", 9),
        ("turn.completed", 10), "agent.completed",
    ]  # fmt: skip
    started, completed = events[1], events[2]
    assert started.at <= completed.at
    assert (started.step, completed.step, started.model) == (1, 1, "pair-model")
    assert completed.data == {
        "usage": USAGE.as_dict(),
        "attempts": 1,
        "cost_usd": str(RATES.cost(USAGE)),
    }
    assert session.summary()["events"]["turn.completed"] == 3
    assert session.summary()["events"]["tool.completed"] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_listener_sees_the_same_events_as_the_stored_records(mode: str) -> None:
    heard: list[Event] = []
    add_listener(heard.append)
    try:
        agent = _agent()
        session = _run_sync(agent) if mode == "sync" else await _run_async(agent)
    finally:
        remove_listener(heard.append)
    mine = [e for e in heard if e.session_id == session.id]
    assert _names(mine) == EXPECTED
    assert _names(session.events) == EXPECTED
    quiet = _agent()
    again = _run_sync(quiet) if mode == "sync" else await _run_async(quiet)
    strip = [(e.name, e.step, e.model, e.tool, dict(e.data)) for e in again.events]
    assert strip == [(e.name, e.step, e.model, e.tool, dict(e.data)) for e in mine]


def test_capacity_counts_events_not_stored_records() -> None:
    agent = _agent()
    with agent.session() as session:
        session._log._capacity = 3
        turn()
        turn()
    assert _names(session.events) == ["turn.started", "turn.completed", "agent.completed"]
    assert session.events[0].step == 2


def test_a_long_session_stays_bounded_and_reads_the_last_events() -> None:
    agent = _agent()
    with agent.session() as session:
        for _ in range(2500):
            turn()
        stored = len(_stored(session))
        events = session.events
    assert stored <= 1000 + 125
    assert len(events) == 1000
    assert (events[-1].name, events[-1].step) == ("turn.completed", 2500)
    assert (events[0].name, events[0].step) == ("turn.started", 2001)


class SetCost(Middleware):
    """Sets the call's cost itself, as a replay does (`Checkpoint`, DBOS)."""

    def after(self, call: Call, result: Any) -> Any:
        call.cost_usd = Decimal("1.25")
        return result


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_cost_read_back_is_the_cost_recorded(mode: str) -> None:
    table = PricingTable()
    table.register("pair-model", RATES)
    agent = _agent(table=table)
    if mode == "sync":
        with agent.session() as session:
            turn()
    else:
        async with agent.session() as session:
            await aturn()
    table.register("pair-model", ModelPricing(input_per_million=100, output_per_million=100))
    completed = next(e for e in session.events if e.name == "turn.completed")
    assert completed.data["cost_usd"] == str(RATES.cost(USAGE)) == str(session.ledger.cost_usd)
    ring = next(e for e in _ring(agent, session.id) if e.name == "turn.completed")
    assert ring == completed

    replayed = _agent(stack=Stack([SetCost()]))
    if mode == "sync":
        with replayed.session() as other:
            turn()
    else:
        async with replayed.session() as other:
            await aturn()
    done = next(e for e in other.events if e.name == "turn.completed")
    assert done.data["cost_usd"] == "1.25"


def test_a_pricing_table_subclass_prices_the_turn() -> None:
    class Flat(PricingTable):
        def cost(self, model: str | None, usage: Usage) -> Decimal:
            return Decimal("0.5")

    table = Flat()
    table.register("pair-model", RATES)
    agent = _agent(table=table)
    with agent.session() as session:
        turn()
    assert session.ledger.cost_usd == Decimal("0.5")
    completed = next(e for e in session.events if e.name == "turn.completed")
    assert completed.data["cost_usd"] == "0.5"


class ReadingSink(RingBufferEventSink):
    """A sink that reads the session back from inside `emit` (its lock must be free)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def emit(self, event: Event) -> None:
        from agentmw.core.context import current_session

        session = current_session()
        if session is not None:
            self.seen.append(len(session.events) + session.summary()["turns"])
        super().emit(event)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_sink_may_read_the_session_while_it_is_told(mode: str) -> None:
    sink = ReadingSink()
    agent = Agent("pairs", stack=Stack([]), event_sink=sink)
    if mode == "sync":
        with agent.session() as session:
            turn()
    else:
        async with agent.session() as session:
            await aturn()
    assert session.summary()["turns"] == 1
    assert len(sink.seen) >= 3  # agent.started, turn.started, turn.completed (no deadlock)


def test_threads_sharing_a_session_keep_every_event() -> None:
    agent = _agent()
    with agent.session() as session:
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait()
            for _ in range(60):
                turn()
                lookup("q")

        threads = [threading.Thread(target=session.bind(work)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = session.events
    names = _names(events)
    assert names.count("turn.started") == names.count("turn.completed") == 240
    assert names.count("tool.called") == names.count("tool.completed") == 240
    assert session.summary()["turns"] == 240
    steps = [e.step for e in events if e.name.endswith(("started", "called"))]
    assert sorted(s for s in steps if s is not None) == list(range(1, 481))


async def test_concurrent_async_turns_in_one_session_keep_every_event() -> None:
    agent = _agent()

    @agent_turn(model="pair-model")
    async def slow() -> Usage:
        await asyncio.sleep(0)
        return USAGE

    async with agent.session() as session:
        await asyncio.gather(*(slow() for _ in range(20)))
    events = session.events
    assert _names(events).count("turn.completed") == 20
    assert events == _ring(agent, session.id)
