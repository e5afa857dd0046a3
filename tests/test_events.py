"""Events and sinks: fields, built-in sinks, fan-out, isolation of failing sinks."""

from __future__ import annotations

import logging
from datetime import UTC

import pytest

from agentmw import Agent, Call, Event, Usage
from agentmw.events import (
    EventSink,
    FanoutEventSink,
    LoggingEventSink,
    RingBufferEventSink,
    RingBufferUsageSink,
    UsageRecord,
    UsageSink,
    add_listener,
    has_listeners,
    listeners,
    remove_listener,
)
from agentmw.testing import ScriptedModel, capture_events


class Broken:
    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError("sink down: secret")

    def record(self, record: UsageRecord) -> None:
        self.calls += 1
        raise RuntimeError("sink down: secret")


def test_event_fields_and_as_dict() -> None:
    event = Event("turn.completed", "s1", "writer", "draft", "p", 3, "m", None, None, "d", {"k": 1})
    assert event.at.tzinfo is UTC
    data = event.as_dict()
    assert data["name"] == "turn.completed"
    assert data["step"] == 3
    assert data["data"] == {"k": 1}
    assert isinstance(data["at"], str)
    with pytest.raises(AttributeError):
        event.name = "x"  # type: ignore[misc]


async def test_session_events_carry_agent_fields(mode: str) -> None:
    sink = RingBufferEventSink()
    agent = Agent("writer", phase="draft", project_id=7, event_sink=sink)
    model = ScriptedModel(["hi"])
    with agent.session() as session:
        if mode == "sync":
            session.run_turn(model, model="m")
        else:
            await session.arun_turn(model.acall, model="m")
    names = [e.name for e in sink.events]
    assert names == ["agent.started", "turn.started", "turn.completed", "agent.completed"]
    assert sink.events == session.events
    completed = sink.events[2]
    assert (completed.role, completed.phase, completed.project_id) == ("writer", "draft", 7)
    assert (completed.session_id, completed.step, completed.model) == (session.id, 1, "m")
    assert completed.data["usage"]["output_tokens"] == 1
    assert completed.data["attempts"] == 1


def test_ring_buffers_are_bounded() -> None:
    sink = RingBufferEventSink(capacity=3)
    for i in range(5):
        sink.emit(Event(f"e{i}"))
    assert [e.name for e in sink] == ["e2", "e3", "e4"]
    assert len(sink) == 3
    sink.clear()
    assert len(sink) == 0
    usage = RingBufferUsageSink(capacity=2)
    for i in range(3):
        usage.record(UsageRecord(None, None, None, "turn", f"n{i}", i, Usage()))
    assert [r.name for r in usage.records] == ["n1", "n2"]
    assert len(usage) == 2
    for bad, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="capacity"):
            RingBufferEventSink(capacity=bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="capacity"):
            RingBufferUsageSink(capacity=bad)  # type: ignore[arg-type]


def test_protocols() -> None:
    assert isinstance(RingBufferEventSink(), EventSink)
    assert isinstance(RingBufferUsageSink(), UsageSink)
    assert isinstance(LoggingEventSink(), EventSink)
    assert isinstance(FanoutEventSink(), EventSink)


def test_agent_validates_sinks() -> None:
    with pytest.raises(TypeError, match="event_sink"):
        Agent("a", event_sink=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="usage_sink"):
        Agent("a", usage_sink=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="role"):
        Agent(" ")
    with pytest.raises(ValueError, match="phase"):
        Agent("a", phase="")


def test_usage_sink_receives_one_record_per_turn() -> None:
    usage_sink = RingBufferUsageSink()
    with Agent("a", project_id="p", usage_sink=usage_sink).session() as session:
        session.run_turn(lambda: None, model="m", usage=Usage(3, 4))
        session.run_tool("t", lambda: None)
    [record] = usage_sink.records
    assert (record.session_id, record.role) == (session.id, "a")
    assert (record.model, record.kind) == ("m", "turn")
    assert (record.usage, record.step, record.project_id) == (Usage(3, 4), 1, "p")


def test_logging_sink(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentmw.events")
    with Agent("a", event_sink=LoggingEventSink()).session():
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "agentmw.events"]
    assert messages[0].startswith("agent.started session=")
    assert caplog.records[0].agentmw_event["role"] == "a"  # type: ignore[attr-defined]


def test_fanout_isolates_a_failing_sink() -> None:
    good = RingBufferEventSink()
    broken = Broken()
    fanout = FanoutEventSink(broken, good)
    for i in range(3):
        fanout.emit(Event(f"e{i}"))
    assert [e.name for e in good] == ["e0", "e1", "e2"]
    assert broken.calls == 3
    assert fanout.errors == {"Broken": 3}


async def test_failing_sink_never_breaks_the_session(mode: str) -> None:
    broken = Broken()
    agent = Agent("a", event_sink=broken, usage_sink=broken)
    model = ScriptedModel(["a", "b"])
    with capture_events() as events, agent.session() as session:
        for _ in range(2):
            if mode == "sync":
                session.run_turn(model)
            else:
                await session.arun_turn(model.acall)
    assert session.iterations == 2
    assert session.state.value == "completed"
    diagnostics = events.named("sink.failed")
    assert len(diagnostics) == 1  # reported once, however often the sink fails
    assert (diagnostics[0].detail, diagnostics[0].failure_class) == ("Broken", "RuntimeError")
    assert broken.calls > 2
    assert session.summary()["events"]["sink.failed"] == 1


def test_events_carry_the_exception_type_never_the_message() -> None:
    with capture_events() as events, pytest.raises(ValueError), Agent("a").session() as session:
        session.run_tool("t", _raise_secret)
    text = repr([e.as_dict() for e in events])
    assert "hunter2" not in text
    [failed] = events.named("tool.failed")
    assert (failed.tool, failed.detail, failed.failure_class) == ("t", "ValueError", "tool_error")


def _raise_secret() -> None:
    raise ValueError("password hunter2")


def test_listeners_and_events_outside_sessions() -> None:
    seen: list[Event] = []
    add_listener(seen.append)
    try:
        Call("turn", "n", lambda: None, model="m", step=0).emit("custom.thing", detail="x", k=1)
    finally:
        remove_listener(seen.append)
    remove_listener(seen.append)  # absent: no error
    Call("turn", "n", lambda: None).emit("ignored")
    assert [(e.name, e.session_id, e.model, e.detail, dict(e.data)) for e in seen] == [
        ("custom.thing", None, "m", "x", {"k": 1})
    ]


def test_a_failing_listener_is_isolated() -> None:
    def bad(event: Event) -> None:
        raise RuntimeError

    add_listener(bad)
    try:
        with Agent("a").session() as session:
            session.run_tool("t", lambda: 1)
    finally:
        remove_listener(bad)
    assert session.state.value == "completed"


def test_call_emit_on_session_fills_tool_or_model() -> None:
    with Agent("a").session() as session:
        Call("tool", "search", lambda: None, model="m", step=4, session=session).emit("x.y", n=1)
        Call("turn", "t", lambda: None, model="m", step=5, session=session).emit("x.z")
        captured = [(e.name, e.tool, e.model, e.step) for e in session.events[1:]]
    assert captured == [("x.y", "search", None, 4), ("x.z", None, "m", 5)]


def test_listeners_are_a_tuple_replaced_on_change() -> None:
    seen: list[Event] = []
    before = listeners.current
    add_listener(seen.append)
    try:
        assert listeners.current == (*before, seen.append)
        assert has_listeners()
        listeners.notify(Event("x.y"))
    finally:
        remove_listener(seen.append)
    assert listeners.current == before
    assert [e.name for e in seen] == ["x.y"]
