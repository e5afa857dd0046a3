"""The parts a `Session` is composed of: event log, lifecycle, call runner, human input, plans."""

from __future__ import annotations

import inspect
from datetime import UTC
from typing import Any

import pytest

from agentmw import Agent, AgentState, Middleware, Session, Usage
from agentmw.core.loops import Plan, arun_plan, run_plan
from agentmw.core.session.event_log import EventLog
from agentmw.core.session.human_input import HumanInput
from agentmw.core.session.lifecycle import Lifecycle
from agentmw.core.session.runner import CallRunner
from agentmw.errors import InvalidTransitionError
from agentmw.events import Event, UsageRecord
from agentmw.testing import capture_events

RUNNER_METHODS = [
    "run_chain",
    "arun_chain",
    "run_stream",
    "arun_stream",
    "run_turn",
    "arun_turn",
    "run_tool",
    "arun_tool",
]


class Broken:
    """An event and usage sink that records what it was given, then raises."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.records = 0

    def emit(self, event: Event) -> None:
        self.events.append(event)
        raise RuntimeError("sink down: secret")

    def record(self, record: UsageRecord) -> None:
        self.records += 1
        raise OSError("disk full")


# -- composition ------------------------------------------------------------------------------
def test_session_is_composed_not_mixed_in() -> None:
    assert Session.__bases__ == (object,)
    session = Agent("a").session()
    for name in RUNNER_METHODS:
        method = getattr(session, name)
        # The runner's own bound method: a decorated call pays no delegating frame.
        assert method.__func__ is getattr(CallRunner, name), name
        assert isinstance(method.__self__, CallRunner)
    for name in ("wait_for_input", "provide_input"):
        assert getattr(session, name).__func__ is getattr(HumanInput, name)
    assert inspect.iscoroutinefunction(session.arun_turn)
    assert inspect.iscoroutinefunction(session.arun_tool)
    assert inspect.iscoroutinefunction(session.wait_for_input)
    assert inspect.isgeneratorfunction(session.run_stream)
    assert inspect.isasyncgenfunction(session.arun_stream)


@pytest.mark.parametrize("name", ["run_turn", "arun_turn"])
def test_run_turn_keeps_its_signature(name: str) -> None:
    params = inspect.signature(getattr(Agent("a").session(), name)).parameters.values()
    assert [(p.name, p.kind.name, p.default) for p in params] == [
        ("fn", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("args", "VAR_POSITIONAL", inspect.Parameter.empty),
        ("model", "KEYWORD_ONLY", None),
        ("usage", "KEYWORD_ONLY", None),
        ("timeout", "KEYWORD_ONLY", None),
        ("kwargs", "VAR_KEYWORD", inspect.Parameter.empty),
    ]


async def _enter_and_leave(mode: str, session: Session) -> None:
    if mode == "sync":
        with session:
            assert session.started_at is not None
    else:
        async with session:
            assert session.started_at is not None


async def test_started_at_and_elapsed_come_from_the_lifecycle(mode: str) -> None:
    session = Agent("a").session()
    assert (session.started_at, session.elapsed_s, session.pending_prompt) == (None, 0.0, None)
    await _enter_and_leave(mode, session)
    assert session.started_at is not None
    assert session.started_at.tzinfo is UTC
    elapsed = session.elapsed_s
    assert elapsed >= 0.0
    assert session.elapsed_s == elapsed  # frozen once the session ended


# -- event log --------------------------------------------------------------------------------
def test_event_log_reports_a_failing_sink_once() -> None:
    sink = Broken()
    agent = Agent("writer", phase="draft", project_id=7, event_sink=sink)
    log = EventLog("s1", agent)
    with capture_events() as seen:
        for step in range(3):
            log.emit("x.y", step=step)
    assert [e.name for e in log.events] == ["x.y", "sink.failed", "x.y", "x.y"]
    [diag] = [e for e in log.events if e.name == "sink.failed"]
    fields = (diag.session_id, diag.role, diag.phase, diag.project_id)
    assert fields == ("s1", "writer", "draft", 7)
    assert (diag.detail, diag.failure_class) == ("Broken", "RuntimeError")
    assert "secret" not in repr(diag.as_dict())
    assert [e.name for e in sink.events] == ["x.y"] * 3  # never sent through the failing sink
    assert log.counts() == {"x.y": 3, "sink.failed": 1}
    assert seen.names() == ["sink.failed", "x.y", "x.y", "x.y"]
    assert agent.sink_isolation.counts() == {"Broken": 3}


def test_event_log_delivers_usage_isolated_and_reports_once_per_agent() -> None:
    sink = Broken()
    agent = Agent("a", usage_sink=sink)
    first, second = EventLog("s1", agent), EventLog("s2", agent)
    record = UsageRecord("s1", "a", "m", "turn", "t", 1, Usage(input_tokens=1))
    first.deliver(sink, sink.record, record)
    first.deliver(sink, sink.record, record)
    second.deliver(sink, sink.record, record)
    assert sink.records == 3
    assert first.counts() == {"sink.failed": 1}
    assert second.counts() == {}  # the agent's isolation already reported this sink
    [diag] = first.events
    assert (diag.session_id, diag.detail, diag.failure_class) == ("s1", "Broken", "OSError")


def test_event_log_is_bounded_but_counts_everything() -> None:
    log = EventLog("s1", Agent("a"), capacity=2)
    for name in ("a", "b", "a"):
        log.emit(name)
    assert [e.name for e in log.events] == ["b", "a"]
    assert log.counts() == {"a": 2, "b": 1}


# -- lifecycle --------------------------------------------------------------------------------
def test_lifecycle_starts_once_and_finishes_once() -> None:
    log = EventLog("s1", Agent("a"))
    finished: list[bool] = []
    lifecycle = Lifecycle(log, lambda: finished.append(True))
    assert (lifecycle.state, lifecycle.started_at, lifecycle.elapsed_s) == (
        AgentState.INITIALIZING,
        None,
        0.0,
    )
    lifecycle.start()
    with pytest.raises(InvalidTransitionError):
        lifecycle.start()  # a session runs once
    assert lifecycle.state is AgentState.RUNNING
    lifecycle.finish(AgentState.FAILED, "KeyError")
    lifecycle.finish(AgentState.FAILED, "KeyError")  # already there: nothing more happens
    with pytest.raises(InvalidTransitionError):
        lifecycle.finish(AgentState.COMPLETED)
    assert finished == [True]
    assert [(e.name, e.detail) for e in log.events] == [("agent.failed", "KeyError")]
    assert lifecycle.ended is not None


# -- plans ------------------------------------------------------------------------------------
def _step(mode: str, log: list[str], name: str, fail: BaseException | None = None) -> Any:
    if mode == "sync":

        def step() -> None:
            log.append(name)
            if fail is not None:
                raise fail

        return step

    async def astep() -> None:
        log.append(name)
        if fail is not None:
            raise fail

    return astep


async def _drive(mode: str, plan: Plan[None]) -> None:
    if mode == "sync":
        run_plan(plan)
    else:
        await arun_plan(plan)


async def test_a_plan_runs_its_steps_in_order_and_handles_their_failures(mode: str) -> None:
    log: list[str] = []

    def plan() -> Plan[None]:
        yield _step(mode, log, "one")()
        try:
            yield _step(mode, log, "two", KeyError("k"))()
        except KeyError:
            log.append("handled")
        yield _step(mode, log, "three")()

    await _drive(mode, plan())
    assert log == ["one", "two", "handled", "three"]


class Stop(BaseException):
    pass


@pytest.mark.parametrize("error", [OSError("x"), Stop()], ids=["exception", "base-exception"])
async def test_a_plan_that_does_not_handle_a_failure_propagates_it(
    mode: str, error: BaseException
) -> None:
    log: list[str] = []

    def plan() -> Plan[None]:
        try:
            yield _step(mode, log, "one", error)()
            log.append("not reached")
        finally:
            log.append("cleanup")

    with pytest.raises(type(error)) as info:
        await _drive(mode, plan())
    assert info.value is error
    assert info.value.__context__ is None
    assert log == ["one", "cleanup"]


async def test_an_empty_plan_runs(mode: str) -> None:
    def plan() -> Plan[None]:
        return
        yield

    await _drive(mode, plan())


class StopOnClose(Middleware):
    def __init__(self, log: list[str], name: str) -> None:
        super().__init__(name=name)
        self.log = log

    def close_session(self, session: Session, error: BaseException | None) -> None:
        self.log.append(self.name)
        if self.name == "stop":
            raise Stop


async def test_a_base_exception_in_a_close_hook_is_not_swallowed(mode: str) -> None:
    log: list[str] = []
    agent = Agent("a", stack=[StopOnClose(log, "outer"), StopOnClose(log, "stop")])
    session = agent.session()
    with pytest.raises(Stop):
        await _enter_and_leave(mode, session)
    # Like before the rework: only `Exception` is reported as layer.close_failed.
    assert log == ["stop"]
    assert session.state is AgentState.COMPLETED
    assert "layer.close_failed" not in [e.name for e in session.events]
