"""The per-call events are stored as compact records and read back as the same `Event`s.

A session keeps `turn.started` / `turn.completed` / `tool.called` / `tool.completed` as
records (a float time, the completed turn's data as a tuple) in its buffer and in the agent's
default ring buffer; every reader gets real `Event`s, and so does every other sink and every
process listener, at emit time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agentmw import Agent, Event, ModelPricing, Stack, Usage, agent_tool, agent_turn
from agentmw.events import RingBufferEventSink, add_listener, materialize, remove_listener
from agentmw.pricing import PricingTable

USAGE = Usage(input_tokens=100, output_tokens=20)
CALL_EVENTS = ["turn.started", "turn.completed", "tool.called", "tool.completed"]


def _agent(**kwargs: object) -> Agent:
    table = PricingTable()
    table.register("rec-model", ModelPricing(input_per_million=1, output_per_million=2))
    return Agent("records", stack=Stack([]), pricing=table, **kwargs)  # type: ignore[arg-type]


@agent_turn(model="rec-model")
def turn() -> Usage:
    return USAGE


@agent_turn(model="rec-model")
async def aturn() -> Usage:
    return USAGE


@agent_tool
def lookup(q: str) -> str:
    return q


@agent_tool
async def alookup(q: str) -> str:
    return q


class ListSink:
    def __init__(self) -> None:
        self.got: list[object] = []

    def emit(self, event: Event) -> None:
        self.got.append(event)


def _check(events: list[Event], session_id: str, before: datetime) -> None:
    calls = [e for e in events if e.name in CALL_EVENTS]
    assert [e.name for e in calls] == CALL_EVENTS
    for event in calls:
        assert type(event) is Event
        assert event.session_id == session_id
        assert event.role == "records"
        assert event.phase == "default"
        assert isinstance(event.at, datetime)
        assert event.at.tzinfo is UTC
        assert before - timedelta(seconds=1) <= event.at <= datetime.now(UTC)
    started, completed, called, done = calls
    assert (started.step, started.model, started.tool) == (1, "rec-model", None)
    assert dict(started.data) == {}
    assert completed.data == {
        "usage": USAGE.as_dict(),
        "attempts": 1,
        "cost_usd": str(Decimal("0.00014")),
    }
    assert completed.as_dict()["data"]["cost_usd"] == "0.00014"
    assert completed.as_dict()["at"] == completed.at.isoformat()
    assert (called.step, called.tool, called.model) == (2, "lookup", None)
    assert (done.step, done.tool) == (2, "lookup")
    assert started.at <= completed.at <= called.at <= done.at


def test_session_and_ring_buffer_read_back_events() -> None:
    agent = _agent()
    before = datetime.now(UTC)
    with agent.session() as session:
        turn()
        lookup("q")
    _check(session.events, session.id, before)
    assert isinstance(agent.event_sink, RingBufferEventSink)
    _check(agent.event_sink.events, session.id, before)
    _check(list(agent.event_sink), session.id, before)
    counts = session.summary()["events"]
    assert (counts["turn.started"], counts["turn.completed"], counts["tool.called"]) == (1, 1, 1)


async def test_async_session_and_ring_buffer_read_back_events() -> None:
    agent = _agent()
    before = datetime.now(UTC)
    async with agent.session() as session:
        await aturn()
        await alookup("q")
    calls = [e for e in session.events if e.name in CALL_EVENTS]
    assert [e.tool for e in calls] == [None, None, "alookup", "alookup"]
    assert calls[1].data["cost_usd"] == "0.00014"
    assert all(type(e) is Event and e.at.tzinfo is UTC for e in session.events)
    assert all(type(e) is Event for e in agent.event_sink.events)  # type: ignore[attr-defined]
    assert before - timedelta(seconds=1) <= calls[0].at


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_other_sinks_and_listeners_get_events_at_emit_time(mode: str) -> None:
    sink = ListSink()
    agent = _agent(event_sink=sink)
    heard: list[object] = []
    if mode == "sync":
        with agent.session() as session:
            turn()
    else:
        async with agent.session() as session:
            await aturn()
    add_listener(heard.append)
    try:
        with agent.session() as second:
            turn()
    finally:
        remove_listener(heard.append)
    assert all(type(e) is Event for e in sink.got)
    assert [e.name for e in sink.got if e.session_id == session.id] == [  # type: ignore[attr-defined]
        "agent.started",
        "turn.started",
        "turn.completed",
        "agent.completed",
    ]
    assert all(type(e) is Event for e in heard)
    assert "turn.completed" in [e.name for e in heard if e.session_id == second.id]  # type: ignore[attr-defined]
    completed = next(e for e in sink.got if e.name == "turn.completed")  # type: ignore[attr-defined]
    assert completed.data["usage"] == USAGE.as_dict()  # type: ignore[attr-defined]


def test_a_replaced_sink_receives_the_next_events() -> None:
    agent = _agent()
    sink = ListSink()
    with agent.session() as session:
        turn()
        agent.event_sink = sink
        turn()
    got = [e.name for e in sink.got]  # type: ignore[attr-defined]
    assert got == ["turn.started", "turn.completed", "agent.completed"]
    assert [e.name for e in session.events].count("turn.completed") == 2


def test_a_ring_buffer_subclass_gets_emit_calls() -> None:
    class Counting(RingBufferEventSink):
        def __init__(self) -> None:
            super().__init__()
            self.emitted = 0

        def emit(self, event: Event) -> None:
            assert type(event) is Event
            self.emitted += 1
            super().emit(event)

    sink = Counting()
    agent = _agent(event_sink=sink)
    with agent.session():
        turn()
    assert sink.emitted == len(sink.events) == 4  # started, turn x2, completed


def test_materialize_leaves_events_alone() -> None:
    event = Event("x", data={"a": 1})
    assert materialize(event) is event
