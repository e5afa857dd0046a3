"""Checkpoint: replay without calling, usage continues, typed round trips, divergence."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest

from agentmw import Agent, ReplayDivergedError, Usage
from agentmw.middleware import Checkpoint
from agentmw.stores import CheckpointCorruptError, InMemorySaver, SqliteSaver
from agentmw.testing import capture_events


class Answer(pydantic.BaseModel):
    text: str
    score: float


@dataclasses.dataclass
class Hit:
    url: str
    rank: int


calls: list[str] = []


def model_call(prompt: str) -> Answer:
    calls.append(f"turn:{prompt}")
    return Answer(text=prompt.upper(), score=0.5)


def search(q: str) -> list[Hit]:
    calls.append(f"tool:{q}")
    return [Hit(f"https://x/{q}", 1)]


async def amodel_call(prompt: str) -> Answer:
    return model_call(prompt)


async def asearch(q: str) -> list[Hit]:
    return search(q)


USAGE = Usage(input_tokens=10, output_tokens=5)


async def turn(s: Any, mode: str, prompt: str) -> Answer:
    if mode == "sync":
        return s.run_turn(model_call, prompt, model="m", usage=USAGE)[0]  # type: ignore[no-any-return]
    return (await s.arun_turn(amodel_call, prompt, model="m", usage=USAGE))[0]  # type: ignore[no-any-return]


async def tool(s: Any, mode: str, q: str) -> list[Hit]:
    if mode == "sync":
        return s.run_tool("search", search, q)  # type: ignore[no-any-return]
    return await s.arun_tool("search", asearch, q)  # type: ignore[no-any-return]


class Sess:
    """Opens a session in the mode under test."""

    def __init__(self, agent: Agent, thread: str, mode: str) -> None:
        self.cm = agent.session(thread_id=thread)
        self.mode = mode

    async def __aenter__(self) -> Any:
        if self.mode == "sync":
            return self.cm.__enter__()
        return await self.cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        if self.mode == "sync":
            self.cm.__exit__(*exc)
        else:
            await self.cm.__aexit__(*exc)


async def agent_run(agent: Agent, mode: str, thread: str, n: int) -> tuple[list[Any], Any]:
    out: list[Any] = []
    async with Sess(agent, thread, mode) as s:
        for i in range(n):
            out.append(await turn(s, mode, f"p{i}"))
            out.append(await tool(s, mode, f"q{i}"))
        summary = s.summary()
    return out, summary


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return InMemorySaver() if request.param == "memory" else SqliteSaver(tmp_path / "c.db")


async def test_replay_returns_stored_results_without_calling(saver: Any, mode: str) -> None:
    calls.clear()
    agent = Agent("writer", stack=[Checkpoint(saver)])
    first, _ = await agent_run(agent, mode, "t1", 2)
    assert len(calls) == 4
    calls.clear()
    with capture_events() as events:
        second, summary2 = await agent_run(agent, mode, "t1", 3)
    assert calls == ["turn:p2", "tool:q2"]  # only the new steps ran
    assert second[:4] == first
    assert type(second[0]) is Answer
    assert type(second[1][0]) is Hit
    replayed = [e for e in events if e.name == "checkpoint.replayed"]
    saved = [e for e in events if e.name == "checkpoint.saved"]
    assert [e.data["checkpoint_step"] for e in replayed] == [1, 2, 3, 4]
    assert [e.data["checkpoint_step"] for e in saved] == [5, 6]
    assert summary2["turns"] == 3
    assert summary2["tool_calls"] == 3
    assert summary2["usage"]["input_tokens"] == 30  # replayed usage is restored, not reset
    snap = saver.get_snapshot("t1")
    assert (snap.iterations, snap.tool_calls, snap.usage.input_tokens) == (3, 3, 30)


async def test_without_thread_id_nothing_is_recorded(mode: str) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    if mode == "sync":
        with agent.session() as s:
            s.run_tool("search", search, "x")
    else:
        async with agent.session() as s:
            await s.arun_tool("search", asearch, "x")
    assert saver.list_threads() == []


async def test_replayed_cost_is_restored_from_the_record(mode: str) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await agent_run(agent, mode, "t", 1)
    record = saver.get_steps("t")[0]
    saver.put_step(dataclasses.replace(record, cost_usd=Decimal("0.42")))
    seen: list[Any] = []

    class Spy(Checkpoint):
        pass

    from agentmw import Middleware

    class Probe(Middleware):
        def after(self, call: Any, result: Any) -> Any:
            seen.append((call.usage, call.cost_usd))
            return result

    agent2 = Agent("w", stack=[Probe(), Checkpoint(saver)])
    await agent_run(agent2, mode, "t", 1)
    assert seen[0] == (USAGE, Decimal("0.42"))


async def test_divergence_raises_then_rerun_drops_the_rest(mode: str) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await agent_run(agent, mode, "t", 2)
    with pytest.raises(ReplayDivergedError) as info:
        async with Sess(agent, "t", mode) as s:
            await turn(s, mode, "different")
    assert info.value.step == 1
    assert info.value.expected.startswith("turn '")
    assert "model_call'" in info.value.got
    assert isinstance(info.value, ReplayDivergedError)

    calls.clear()
    rerun = Agent("w", stack=[Checkpoint(saver, on_divergence="rerun")])
    async with Sess(rerun, "t", mode) as s:
        await turn(s, mode, "p0")  # replayed
        await turn(s, mode, "changed")  # diverges: the rest is dropped, runs live
    assert calls == ["turn:changed"]
    assert [r.step for r in saver.get_steps("t")] == [1, 5]


async def test_unserializable_result_names_the_step(mode: str) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])

    def opaque() -> object:
        return object()

    async def aopaque() -> object:
        return object()

    async def go() -> None:
        async with Sess(agent, "t", mode) as s:
            if mode == "sync":
                s.run_tool("opaque", opaque)
            else:
                await s.arun_tool("opaque", aopaque)

    with pytest.raises(TypeError, match=r"checkpoint step 1 \(tool 'opaque'\)"):
        await go()

    # store_results=False records the step without its result; it runs again on resume.
    lax = Agent("w", stack=[Checkpoint(saver, store_results=False)])
    for _ in range(2):
        async with Sess(lax, "t2", mode) as s:
            got = (
                s.run_tool("opaque", opaque)
                if mode == "sync"
                else await s.arun_tool("opaque", aopaque)
            )
            assert type(got) is object
    (record,) = saver.get_steps("t2")
    assert record.result is None


async def test_failed_step_runs_again_on_resume(mode: str) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    attempts: list[int] = []

    def flaky(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return n

    async def aflaky(n: int) -> int:
        return flaky(n)

    async def call(s: Any) -> Any:
        return (
            s.run_tool("flaky", flaky, 1)
            if mode == "sync"
            else await s.arun_tool("flaky", aflaky, 1)
        )

    with pytest.raises(RuntimeError):
        async with Sess(agent, "t", mode) as s:
            await call(s)
    assert saver.get_steps("t")[0].status == "failed"
    async with Sess(agent, "t", mode) as s:
        assert await call(s) == 1
    async with Sess(agent, "t", mode) as s:
        assert await call(s) == 1  # now replayed
    assert attempts == [1, 1]


async def test_concurrent_tools_replay_in_any_start_order() -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    ran: list[str] = []

    async def work(q: str) -> str:
        ran.append(q)
        await asyncio.sleep(0)
        return q * 2

    async with agent.session(thread_id="t") as s:
        await asyncio.gather(*(s.arun_tool("work", work, q) for q in "abc"))
    ran.clear()
    async with agent.session(thread_id="t") as s:
        got = await asyncio.gather(*(s.arun_tool("work", work, q) for q in "cba"))
    assert got == ["cc", "bb", "aa"]
    assert ran == []


async def test_corrupt_result_names_thread_and_step() -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await agent_run(agent, "sync", "t", 1)
    record = saver.get_steps("t")[0]
    saver.put_step(dataclasses.replace(record, result='{"text": 1}'))
    with pytest.raises(CheckpointCorruptError, match=r"thread 't', step 1"):
        await agent_run(agent, "sync", "t", 1)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="on_divergence must be one of raise, rerun"):
        Checkpoint(InMemorySaver(), on_divergence="skip")
    with pytest.raises(TypeError, match=r"saver must be a CheckpointSaver \(missing "):
        Checkpoint(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store_results must be True or False"):
        Checkpoint(InMemorySaver(), store_results="yes")  # type: ignore[arg-type]
