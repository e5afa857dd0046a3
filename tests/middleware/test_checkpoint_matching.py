"""Checkpoint matching: `key=` / `checkpoint_key=` instead of the fingerprint, and strict
divergence for sequential runs (concurrent calls still match in any order)."""

from __future__ import annotations

import asyncio

import pytest

from agentmw import Agent, Call, ReplayDivergedError, agent_tool, agent_turn
from agentmw.middleware import Checkpoint
from agentmw.stores import InMemorySaver
from agentmw.testing import capture_events

ran: list[str] = []


@agent_tool
def step(n: int) -> int:
    ran.append(f"step:{n}")
    return n * 10


@agent_tool(name="step")
async def astep(n: int) -> int:
    ran.append(f"step:{n}")
    return n * 10


async def run_steps(agent: Agent, mode: str, ns: list[int]) -> list[int]:
    if mode == "sync":
        with agent.session(thread_id="t"):
            return [step(n) for n in ns]
    async with agent.session(thread_id="t"):
        return [await astep(n) for n in ns]


@pytest.mark.parametrize("position", [1, 3])
async def test_a_changed_argument_of_a_sequential_run_raises(mode: str, position: int) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await run_steps(agent, mode, [1, 2, 3, 4])
    ran.clear()
    changed = [1, 2, 3, 4]
    changed[position - 1] = 99
    with pytest.raises(ReplayDivergedError) as info:
        await run_steps(agent, mode, changed)
    err = info.value
    assert err.step == position
    assert err.expected.startswith("tool 'step' #")
    assert err.got.startswith("tool 'step' #")
    assert err.expected != err.got
    assert str(err).startswith(f"replay diverged at step {position}: expected tool 'step' #")
    assert ran == []  # nothing ran live
    assert [r.step for r in saver.get_steps("t")] == [1, 2, 3, 4]  # nothing dropped


@pytest.mark.parametrize("position", [1, 3])
async def test_on_divergence_rerun_drops_the_rest_and_continues_live(
    mode: str, position: int
) -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver, on_divergence="rerun")])
    await run_steps(agent, mode, [1, 2, 3, 4])
    ran.clear()
    changed = [1, 2, 3, 4]
    changed[position - 1] = 99
    with capture_events() as events:
        got = await run_steps(agent, mode, changed)
    assert got == [n * 10 for n in changed]
    assert ran == [f"step:{n}" for n in changed[position - 1 :]]  # from the change on, live
    diverged = [e for e in events if e.name == "checkpoint.diverged"]
    assert [(e.data["checkpoint_step"], e.data["dropped"]) for e in diverged] == [
        (position, 4 - position + 1)
    ]
    held = saver.get_steps("t")
    assert [r.step for r in held] == [*range(1, position), *range(5, 5 + 4 - position + 1)]
    assert all(r.status == "completed" for r in held)


async def test_a_new_call_where_a_record_waits_diverges(mode: str) -> None:
    # The case: with step(1) recorded, a resume calling step(2) used to run live.
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await run_steps(agent, mode, [1])
    with pytest.raises(ReplayDivergedError) as info:
        await run_steps(agent, mode, [2])
    assert info.value.step == 1


@agent_tool(name="step")
async def io_step(n: int) -> int:
    ran.append(f"step:{n}")
    await asyncio.sleep(0.01)  # real I/O: the gathered calls are in flight together
    return n * 10


async def test_three_gathered_calls_started_in_another_order_still_replay() -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])

    async def run(order: str) -> list[int]:
        async with agent.session(thread_id="g"):
            first = await io_step(0)
            got = await asyncio.gather(*(io_step(int(c)) for c in order))
            return [first, *got, await io_step(9)]

    assert await run("123") == [0, 10, 20, 30, 90]
    ran.clear()
    with capture_events() as events:
        assert await run("312") == [0, 30, 10, 20, 90]
    assert ran == []  # all replayed
    assert len([e for e in events if e.name == "checkpoint.replayed"]) == 5


async def test_a_gathered_call_that_changed_still_diverges_at_the_next_sequential_call() -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    async with agent.session(thread_id="g"):
        await asyncio.gather(io_step(1), io_step(2))
        await io_step(3)

    async def resume() -> None:
        async with agent.session(thread_id="g"):
            await asyncio.gather(io_step(2), io_step(1))  # another order: replays
            await io_step(4)  # a changed argument after the gather: diverges

    with pytest.raises(ReplayDivergedError) as info:
        await resume()
    assert info.value.step == 3


def _without_timestamp(call: Call) -> str:
    prompt: str = call.args[0]
    return prompt.split(" @ ")[0]


async def test_checkpoint_key_ignores_a_timestamp_in_the_prompt(mode: str) -> None:
    saver = InMemorySaver()
    asked: list[str] = []

    def model(prompt: str) -> str:
        asked.append(prompt)
        return prompt.split(" @ ")[0].upper()

    async def amodel(prompt: str) -> str:
        return model(prompt)

    agent = Agent("w", stack=[Checkpoint(saver, key=_without_timestamp)])

    async def ask(at: str) -> str:
        prompt = f"summarize the report @ {at}"
        if mode == "sync":
            with agent.session(thread_id="k") as s:
                return s.run_turn(model, prompt, model="m")[0]  # type: ignore[no-any-return]
        async with agent.session(thread_id="k") as s:
            return (await s.arun_turn(amodel, prompt, model="m"))[0]  # type: ignore[no-any-return]

    assert await ask("10:00") == "SUMMARIZE THE REPORT"
    assert await ask("10:05") == "SUMMARIZE THE REPORT"  # replayed despite the new timestamp
    assert asked == ["summarize the report @ 10:00"]
    (record,) = saver.get_steps("k")
    assert record.fingerprint.startswith("key:")


async def test_a_decorator_checkpoint_key_takes_precedence_over_the_layer_key(mode: str) -> None:
    saver = InMemorySaver()
    asked: list[str] = []

    @agent_turn(model="m", checkpoint_key=_without_timestamp)
    def model(prompt: str) -> str:
        asked.append(prompt)
        return "ok"

    @agent_turn(model="m", name="model", checkpoint_key=_without_timestamp)
    async def amodel(prompt: str) -> str:
        asked.append(prompt)
        return "ok"

    # The layer's key would make every call the same step; the decorator's wins.
    agent = Agent("w", stack=[Checkpoint(saver, key=lambda call: "same")])

    async def ask(prompt: str) -> None:
        if mode == "sync":
            with agent.session(thread_id="d"):
                model(prompt)
        else:
            async with agent.session(thread_id="d"):
                await amodel(prompt)

    await ask("a @ 1")
    await ask("a @ 2")
    assert asked == ["a @ 1"]
    with pytest.raises(ReplayDivergedError):
        await ask("b @ 3")


async def test_a_key_that_is_not_a_str_is_a_clear_error(mode: str) -> None:
    @agent_tool(name="t", checkpoint_key=lambda call: 42)  # type: ignore[arg-type,return-value]
    def tool() -> int:
        return 1

    @agent_tool(name="t", checkpoint_key=lambda call: 42)  # type: ignore[arg-type,return-value]
    async def atool() -> int:
        return 1

    agent = Agent("w", stack=[Checkpoint(InMemorySaver())])

    async def call() -> None:
        if mode == "sync":
            with agent.session(thread_id="x"):
                tool()
        else:
            async with agent.session(thread_id="x"):
                await atool()

    with pytest.raises(TypeError, match="checkpoint_key must return a str for tool 't', got int"):
        await call()
    layer = Agent("w", stack=[Checkpoint(InMemorySaver(), key=lambda call: None)])  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"Checkpoint\(key=\) must return a str for tool 'step'"):
        await run_steps(layer, mode, [1])


def test_records_keep_the_run_they_came_from() -> None:
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    with agent.session(thread_id="r"):
        step(1)
        step(2)
    assert [(r.step, r.finished_before) for r in saver.get_steps("r")] == [(1, 0), (2, 1)]


@agent_turn(model="m")
def think(prompt: str) -> str:
    ran.append(f"think:{prompt}")
    return prompt.upper()


@agent_turn(model="m", name="think")
async def athink(prompt: str) -> str:
    ran.append(f"think:{prompt}")
    return prompt.upper()


async def run_script(agent: Agent, mode: str, script: list[str | int]) -> list[object]:
    """Turns (str prompts) and tool steps (int) in order, one session of thread "p"."""
    out: list[object] = []
    if mode == "sync":
        with agent.session(thread_id="p"):
            out = [think(x) if isinstance(x, str) else step(x) for x in script]
        return out
    async with agent.session(thread_id="p"):
        for x in script:
            out.append(await athink(x) if isinstance(x, str) else await astep(x))
    return out


async def test_the_tool_calls_of_one_turn_replay_in_any_order(mode: str) -> None:
    # A framework runs the tool calls of one model response in parallel: the order they were
    # recorded in is timing. Between two turns they replay in any order; a call that belongs
    # after the next turn still diverges.
    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    await run_script(agent, mode, ["a", 1, 2, "b", 3])
    ran.clear()
    assert await run_script(agent, mode, ["a", 2, 1, "b", 3]) == ["A", 20, 10, "B", 30]
    assert ran == []
    with pytest.raises(ReplayDivergedError) as info:
        await run_script(agent, mode, ["a", 3])
    assert info.value.step == 2  # the next record: step(1), the first tool call after "a"
    assert ran == []
