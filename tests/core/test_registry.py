"""`AgentRegistry`: lookups by id, role and project; finished sessions are bounded."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from agentmw import Agent, SessionClosedError, Stack, Usage, agent_turn
from agentmw.core import AgentRegistry, AgentState, default_registry
from agentmw.events import RingBufferEventSink


def test_lookups() -> None:
    registry = AgentRegistry()
    writer = Agent("writer", project_id="p1", registry=registry)
    editor = Agent("editor", project_id="p2", registry=registry)
    with writer.session() as w:
        assert registry.get(w.id) is w
        assert registry.active() == [w]
        assert registry.finished() == []
        with editor.session() as e:
            assert registry.by_role("editor") == [e]
            assert registry.by_project("p1") == [w]
            assert len(registry) == 2
    assert registry.active() == []
    assert registry.finished() == [e, w]
    assert registry.get(w.id) is w
    assert registry.get("nope") is None
    registry.clear()
    assert len(registry) == 0


def test_finished_sessions_are_bounded() -> None:
    registry = AgentRegistry(max_finished=3)
    agent = Agent("a", registry=registry)
    sessions = []
    for _ in range(5):
        with agent.session() as session:
            sessions.append(session)
    assert registry.finished() == sessions[2:]
    assert registry.get(sessions[0].id) is None
    assert len(registry) == 3


def test_zero_keeps_no_finished_sessions() -> None:
    registry = AgentRegistry(max_finished=0)
    with Agent("a", registry=registry).session():
        assert len(registry) == 1
    assert len(registry) == 0


@pytest.mark.parametrize(
    ("bad", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)]
)
def test_max_finished_is_validated(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_finished"):
        AgentRegistry(max_finished=bad)  # type: ignore[arg-type]


def test_default_registry_is_used_by_default() -> None:
    with Agent("a").session() as session:
        assert default_registry().get(session.id) is session


def test_sessions_register_and_finish_through_public_methods() -> None:
    registry = AgentRegistry(max_finished=1)
    session = Agent("a", registry=registry).session()
    registry.register(session)
    assert registry.active() == [session]
    registry.mark_finished(session)
    assert (registry.active(), registry.finished()) == ([], [session])


def _run_session(agent: Agent, turns: int) -> str:
    @agent_turn(model="registry-model")
    def turn() -> Usage:
        return Usage(input_tokens=10, output_tokens=2)

    with agent.session() as session:
        for _ in range(turns):
            turn()
        session.run_tool("search", lambda: "found")
    return session.id


def test_a_finished_session_is_itself_while_held_and_its_summary_after() -> None:
    registry = AgentRegistry()
    agent = Agent("a", project_id="p", registry=registry)
    with agent.session() as session:
        session.emit("custom.note")
    summary = session.summary()
    events = session.events
    assert registry.get(session.id) is session
    assert registry.finished() == [session]
    session_id = session.id
    del session
    gc.collect()
    (retired,) = registry.finished()
    assert registry.get(session_id) is retired
    assert registry.by_role("a") == [retired] == registry.by_project("p")
    assert retired.id == session_id
    assert retired.state is AgentState.COMPLETED
    assert retired.summary() == summary
    assert retired.events == []
    assert [e.name for e in events] == ["agent.started", "custom.note", "agent.completed"]
    with pytest.raises(SessionClosedError):
        retired.run_turn(lambda: None)


def test_the_stand_in_keeps_counters_usage_and_event_counts() -> None:
    registry = AgentRegistry()
    agent = Agent("a", registry=registry)
    session_id = _run_session(agent, 3)
    gc.collect()
    retired = registry.get(session_id)
    assert retired is not None
    assert (retired.iterations, retired.tool_calls, retired.tool_count("search")) == (3, 1, 1)
    assert retired.usage == Usage(input_tokens=30, output_tokens=6)
    assert retired.summary()["events"] == {
        "agent.started": 1,
        "turn.started": 3,
        "turn.completed": 3,
        "tool.called": 1,
        "tool.completed": 1,
        "agent.completed": 1,
    }
    assert retired.elapsed_s > 0
    assert retired.started_at is not None


async def test_an_async_session_is_retired_the_same_way() -> None:
    registry = AgentRegistry()
    agent = Agent("a", registry=registry)

    @agent_turn(model="registry-model")
    async def turn() -> Usage:
        return Usage(input_tokens=1)

    async with agent.session() as session:
        await turn()
    session_id = session.id
    del session
    gc.collect()
    retired = registry.get(session_id)
    assert retired is not None
    assert retired.iterations == 1
    assert retired.events == []
    with pytest.raises(SessionClosedError):
        await retired.arun_turn(turn)


def test_finished_sessions_retain_their_summary_not_their_events() -> None:
    # Target: 1,000 finished sessions of 100 turns retain <= 10 MiB, i.e. 10 KiB each (the
    # exact figure: benchmarks/bench_sessions_memory.py); their events would be ~90 KiB each.
    # 200 sessions keep the test quick under tracemalloc.
    registry = AgentRegistry()
    agent = Agent("m", stack=Stack(), registry=registry, event_sink=RingBufferEventSink(10))
    _run_session(agent, 100)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            _run_session(agent, 100)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(registry.finished()) == 201
    assert retained <= 200 * 10 * 1024, retained
