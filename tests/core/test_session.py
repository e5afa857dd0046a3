"""`Session`: lifecycle, run_* twins, summary, human input, context propagation, layer hooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentmw import (
    Agent,
    AgentState,
    Call,
    Middleware,
    Session,
    SessionClosedError,
    Stack,
    TurnTimeoutError,
    Usage,
    agent_turn,
    current_session,
)
from agentmw.core.middleware import Next
from agentmw.core.session.lifecycle import TRANSITIONS, check_transition
from agentmw.errors import InvalidTransitionError, SessionStateError
from agentmw.middleware import Timeout
from agentmw.testing import ScriptedModel
from tests.support import consume, make_fn, state_of, turn


async def enter_and_run(mode: str, session: Session, body: Any) -> None:
    """Run `body(session)` (sync callable) inside the session, entered with with/async with."""
    if mode == "sync":
        with session:
            body(session)
    else:
        async with session:
            body(session)


# -- lifecycle ------------------------------------------------------------------------------
ALL_PAIRS = [(a, b) for a in AgentState for b in AgentState]


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_transition_table(current: AgentState, target: AgentState) -> None:
    allowed = {
        (AgentState.INITIALIZING, AgentState.RUNNING),
        (AgentState.INITIALIZING, AgentState.FAILED),
        (AgentState.INITIALIZING, AgentState.CANCELLED),
        (AgentState.RUNNING, AgentState.WAITING_FOR_INPUT),
        (AgentState.RUNNING, AgentState.COMPLETED),
        (AgentState.RUNNING, AgentState.FAILED),
        (AgentState.RUNNING, AgentState.CANCELLED),
        (AgentState.WAITING_FOR_INPUT, AgentState.RUNNING),
        (AgentState.WAITING_FOR_INPUT, AgentState.FAILED),
        (AgentState.WAITING_FOR_INPUT, AgentState.CANCELLED),
    }
    if (current, target) in allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransitionError) as info:
            check_transition(current, target)
        assert (info.value.current, info.value.target) == (current, target)
    assert all(not TRANSITIONS[s] for s in AgentState if s.terminal)


async def test_clean_exit_completes(mode: str) -> None:
    session = Agent("a").session()
    assert session.state is AgentState.INITIALIZING
    seen: list[AgentState] = []
    await enter_and_run(mode, session, lambda s: seen.append(s.state))
    assert seen == [AgentState.RUNNING]
    assert state_of(session) is AgentState.COMPLETED
    assert [e.name for e in session.events] == ["agent.started", "agent.completed"]


async def test_exception_fails_and_is_reraised(mode: str) -> None:
    session = Agent("a").session()

    def body(s: Session) -> None:
        raise ValueError("secret prompt text")

    with pytest.raises(ValueError, match="secret"):
        await enter_and_run(mode, session, body)
    assert session.state is AgentState.FAILED
    failed = session.events[-1]
    assert (failed.name, failed.detail) == ("agent.failed", "ValueError")


async def test_cancelled_error_cancels_and_is_reraised() -> None:
    agent = Agent("a")
    started = asyncio.Event()
    holder: list[Session] = []

    async def run() -> None:
        async with agent.session() as session:
            holder.append(session)
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert holder[0].state is AgentState.CANCELLED
    assert holder[0].events[-1].name == "agent.cancelled"


def test_sync_cancelled_error_cancels() -> None:
    session = Agent("a").session()
    with pytest.raises(asyncio.CancelledError), session:
        raise asyncio.CancelledError
    assert session.state is AgentState.CANCELLED


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_nothing_leaves_a_terminal_state(end: str) -> None:
    session = Agent("a").session()
    with session:
        getattr(session, end)()
        getattr(session, end)()  # idempotent: same state
        others = {"complete", "fail", "cancel"} - {end}
        for other in others:
            with pytest.raises(InvalidTransitionError):
                getattr(session, other)()
    assert session.state.terminal
    with pytest.raises(InvalidTransitionError), session:
        pass  # a finished session cannot be entered again


def test_a_session_runs_once() -> None:
    session = Agent("a").session()
    with session, pytest.raises(InvalidTransitionError), session:
        pass


def test_explicit_end_inside_the_block_is_kept() -> None:
    session = Agent("a").session()

    def body(s: Session) -> None:
        s.complete()
        raise RuntimeError

    with pytest.raises(RuntimeError):
        asyncio.run(enter_and_run("sync", session, body))
    assert session.state is AgentState.COMPLETED


async def test_calls_on_finished_session_raise(mode: str) -> None:
    model = ScriptedModel(["x"], repeat_last=True)
    with Agent("a").session() as session:
        session.fail("Boom")
        with pytest.raises(SessionClosedError, match="open a new session"):
            await turn(mode, session, model)
        with pytest.raises(SessionClosedError):
            session.run_tool("t", lambda: 1)
    assert model.calls == []
    fresh = Agent("a").session()
    with pytest.raises(SessionStateError, match="initializing"):
        fresh.run_turn(model)


# -- run_turn / run_tool ----------------------------------------------------------------------
async def test_run_turn_and_tool(mode: str) -> None:
    model = ScriptedModel(["first answer", "second"], model="m1")
    with Agent("a").session() as session:
        if mode == "sync":
            reply, usage = session.run_turn(model, "prompt text", model="m1")
            tool = session.run_tool("add", lambda x, y: x + y, 2, y=3)
            _, fixed = session.run_turn(model, usage=Usage(7, 8))
        else:
            reply, usage = await session.arun_turn(model.acall, "prompt text", model="m1")
            tool = await session.arun_tool("add", lambda x, y: x + y, 2, y=3)
            _, fixed = await session.arun_turn(model, usage=Usage(7, 8))
    assert reply.text == "first answer"
    assert usage == reply.usage
    assert tool == 5
    assert fixed == Usage(7, 8)
    assert session.iterations == 2
    assert session.tool_calls == 1
    assert session.usage == usage + fixed
    assert model.calls[0] == (("prompt text",), {})  # model= is run_turn's, not fn's


def test_run_methods_reject_the_wrong_kind_of_function() -> None:
    async def afn() -> None:
        pass

    def gen() -> Any:
        yield 1

    with Agent("a").session() as session:
        with pytest.raises(TypeError, match="arun_turn"):
            session.run_turn(afn)
        with pytest.raises(TypeError, match="arun_tool"):
            session.run_tool("t", afn)
        with pytest.raises(TypeError, match="generators"):
            session.run_turn(gen)
        with pytest.raises(TypeError, match="callable"):
            session.run_turn(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="tool name"):
            session.run_tool(" ", lambda: 1)
        with pytest.raises(TypeError, match="usage"):
            session.run_turn(lambda: 1, usage="lots")  # type: ignore[arg-type]
    assert session.iterations == 0  # nothing refused here reached the stack


async def test_async_run_methods_reject_generators_and_non_callables() -> None:
    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    async with Agent("a").session() as session:
        # A sync generator function is refused before the async adapter could hide it.
        with pytest.raises(TypeError, match="generators"):
            await session.arun_turn(gen)
        with pytest.raises(TypeError, match="generators"):
            await session.arun_tool("t", agen)
        with pytest.raises(TypeError, match="callable"):
            await session.arun_turn(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="tool name"):
            await session.arun_tool(" ", lambda: 1)
        result, _ = await session.arun_turn(lambda: "sync ok")  # a sync fn is adapted
    assert result == "sync ok"
    assert session.iterations == 1


async def test_failed_calls_are_counted_and_reported(mode: str) -> None:
    model = ScriptedModel([KeyError("secret")])
    with Agent("a").session() as session, pytest.raises(KeyError):
        await turn(mode, session, model)
    assert session.iterations == 1
    failed = [e for e in session.events if e.name == "turn.failed"]
    assert failed[0].detail == "KeyError"
    assert failed[0].failure_class == "unknown"


async def test_run_turn_timeout(mode: str) -> None:
    release = threading.Event()

    def hang() -> str:
        release.wait(5)
        return "late"

    async def ahang() -> str:
        await asyncio.sleep(5)
        return "late"

    try:
        with Agent("a").session() as session:
            with pytest.raises(TurnTimeoutError) as info:
                await turn(mode, session, hang if mode == "sync" else ahang, timeout=0.05)
            assert isinstance(info.value, TimeoutError)
            assert session.run_turn(lambda: "fast", timeout=1.0)[0] == "fast"
    finally:
        release.set()
    assert "timeout.expired" in session.summary()["events"]


def test_summary() -> None:
    model = ScriptedModel(["abcdefgh"], model="m1")
    with Agent("writer", phase="draft", project_id="p1").session("thread-1") as session:
        session.run_turn(model, "prompt", model="m1")
        session.run_turn(lambda: "x", model="m2", usage=Usage(10, 1))
        session.run_tool("t", lambda: None)
    summary = session.summary()
    assert summary["state"] == "completed"
    assert (summary["role"], summary["phase"], summary["project_id"]) == ("writer", "draft", "p1")
    assert summary["thread_id"] == "thread-1"
    assert (summary["turns"], summary["tool_calls"]) == (2, 1)
    assert summary["usage"]["input_tokens"] == 11
    assert summary["usage"]["output_tokens"] == 3
    assert summary["models"]["m1"]["calls"] == 1
    assert summary["models"]["m2"]["input_tokens"] == 10
    assert summary["events"]["turn.completed"] == 2
    assert summary["events"]["tool.completed"] == 1
    assert summary["elapsed_s"] >= 0


def test_session_arguments_are_validated() -> None:
    agent = Agent("a")
    with pytest.raises(ValueError, match="thread_id"):
        agent.session(" ")
    with pytest.raises(TypeError, match="handoff"):
        agent.session(handoff={"x": 1})  # type: ignore[arg-type]


# -- human input ------------------------------------------------------------------------------
async def test_wait_for_input_same_loop() -> None:
    async with Agent("a").session() as session:
        waiter = asyncio.create_task(session.wait_for_input("Approve?"))
        await asyncio.sleep(0)
        assert session.state is AgentState.WAITING_FOR_INPUT
        assert session.pending_prompt == "Approve?"
        with pytest.raises(SessionStateError, match="already waiting"):
            await session.wait_for_input("again")
        session.provide_input("yes")
        assert await waiter == "yes"
        assert state_of(session) is AgentState.RUNNING
        assert session.pending_prompt is None
    names = [e.name for e in session.events]
    assert "agent.waiting_for_input" in names
    assert "agent.input_received" in names


async def test_provide_input_from_another_thread() -> None:
    async with Agent("a").session() as session:

        def answer() -> None:
            while session.state is not AgentState.WAITING_FOR_INPUT:
                threading.Event().wait(0.001)
            session.provide_input({"ok": True})

        thread = threading.Thread(target=answer)
        thread.start()
        assert await session.wait_for_input("?") == {"ok": True}
        thread.join()


async def test_provide_input_without_waiter_raises() -> None:
    async with Agent("a").session() as session:
        with pytest.raises(SessionStateError, match="not waiting"):
            session.provide_input(1)
    with pytest.raises(InvalidTransitionError):
        await session.wait_for_input("too late")


# -- context propagation ----------------------------------------------------------------------
async def test_current_session_propagates_into_tasks() -> None:
    assert current_session() is None
    async with Agent("a").session() as session:

        async def child() -> Session | None:
            await asyncio.sleep(0)
            return current_session()

        assert list(await asyncio.gather(child(), child())) == [session, session]
    assert current_session() is None


def test_current_session_propagates_into_timeout_worker_thread() -> None:
    seen: list[Any] = []

    def fn() -> str:
        seen.append((current_session(), threading.current_thread().name))
        return "ok"

    with Agent("a", stack=[Timeout(2.0)]).session() as session:
        assert session.run_turn(fn)[0] == "ok"
    assert seen[0][0] is session
    assert seen[0][1].startswith("agentmw-worker")


# -- layer session hooks ----------------------------------------------------------------------
class SessionHooks(Middleware):
    def __init__(self, log: list[Any], *, name: str, fail_open: bool = False) -> None:
        super().__init__(name=name)
        self.log = log
        self.fail_open = fail_open

    def open_session(self, session: Session) -> None:
        self.log.append(("open", self.name))
        if self.fail_open:
            raise RuntimeError("cannot open")
        session.meta[self.name] = "state"

    def close_session(self, session: Session, error: BaseException | None) -> None:
        self.log.append(("close", self.name, type(error).__name__ if error else None))


class AsyncSessionHooks(SessionHooks):
    async def aopen_session(self, session: Session) -> None:
        self.log.append(("aopen", self.name))

    async def aclose_session(self, session: Session, error: BaseException | None) -> None:
        self.log.append(("aclose", self.name, type(error).__name__ if error else None))


async def test_session_hooks_in_order_and_reverse(mode: str) -> None:
    log: list[Any] = []
    stack = Stack([SessionHooks(log, name="one"), SessionHooks(log, name="two")])
    session = Agent("a", stack=stack).session()
    await enter_and_run(mode, session, lambda s: log.append(("body", dict(s.meta))))
    assert log == [
        ("open", "one"),
        ("open", "two"),
        ("body", {"one": "state", "two": "state"}),
        ("close", "two", None),
        ("close", "one", None),
    ]


async def test_async_session_hook_twins() -> None:
    log: list[Any] = []
    agent = Agent("a", stack=[AsyncSessionHooks(log, name="x"), SessionHooks(log, name="y")])
    with pytest.raises(KeyError):
        async with agent.session():
            raise KeyError
    assert log == [
        ("aopen", "x"),
        ("open", "y"),
        ("close", "y", "KeyError"),
        ("aclose", "x", "KeyError"),
    ]


async def test_failing_open_closes_the_opened_layers(mode: str) -> None:
    log: list[Any] = []
    stack = Stack(
        [
            SessionHooks(log, name="one"),
            SessionHooks(log, name="two", fail_open=True),
            SessionHooks(log, name="three"),
        ]
    )
    session = Agent("a", stack=stack).session()
    with pytest.raises(RuntimeError, match="cannot open"):
        await enter_and_run(mode, session, lambda s: None)
    assert log == [("open", "one"), ("open", "two"), ("close", "one", "RuntimeError")]
    assert session.state is AgentState.FAILED
    assert current_session() is None


class BrokenClose(Middleware):
    def close_session(self, session: Session, error: BaseException | None) -> None:
        raise OSError("disk")


async def test_a_failing_close_does_not_skip_the_others(mode: str) -> None:
    log: list[Any] = []
    agent = Agent("a", stack=[SessionHooks(log, name="one"), BrokenClose()])
    session = agent.session()
    await enter_and_run(mode, session, lambda s: None)
    assert log[-1] == ("close", "one", None)
    closed = [e for e in session.events if e.name == "layer.close_failed"]
    assert (closed[0].detail, closed[0].failure_class) == ("BrokenClose", "OSError")


class CountSteps(Middleware):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def handle(self, call: Call, call_next: Next) -> Any:
        self.steps.append(call.step)
        assert call.session is current_session()
        assert call.agent is call.session.agent  # type: ignore[union-attr]
        return call_next(call)


def test_steps_are_numbered_per_session() -> None:
    layer = CountSteps()

    def step() -> None:
        return None

    turn = agent_turn(step)
    with Agent("a", stack=[layer]).session():
        turn()
        turn()
    with Agent("a", stack=[layer]).session():
        turn()
    assert layer.steps == [1, 2, 1]


def test_code_flags_see_through_methods_partials_and_callables() -> None:
    import functools
    import inspect

    from agentmw.core.session.imperative import code_flags

    async def coro() -> None:
        return None

    def gen() -> Iterator[int]:
        yield 1

    class Holder:
        async def method(self) -> None:
            return None

        def __call__(self) -> int:
            return 1

    assert code_flags(coro) & inspect.CO_COROUTINE
    assert code_flags(Holder().method) & inspect.CO_COROUTINE
    assert code_flags(functools.partial(coro)) & inspect.CO_COROUTINE
    assert code_flags(gen) & inspect.CO_GENERATOR
    assert not code_flags(Holder()) & (inspect.CO_COROUTINE | inspect.CO_GENERATOR)


# -- streams ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_a_stream_stopped_early_is_accounted_after_it_is_closed(path: str) -> None:
    # The chain's own `finally` (here: the terminal's usage estimate) runs before the turn is
    # accounted, on both paths; the async one used to account first and record no usage.
    chunks = make_fn(path)
    with Agent("a", stack=[]).session() as session:
        assert await consume(path, agent_turn(model="m")(chunks), take=1) == ["a"]
    [completed] = [e for e in session.events if e.name == "turn.completed"]
    assert completed.data["usage"]["output_tokens"] == 1  # the estimate for one chunk
    assert session.usage.output_tokens == 1
    assert session.iterations == 1
