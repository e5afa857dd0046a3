"""`agentmw.testing`: ScriptedModel, FakeClock, capture_events, RecordingMiddleware."""

from __future__ import annotations

import threading

import pytest

from agentmw import Agent, Usage
from agentmw.errors import ScriptExhaustedError
from agentmw.testing import Chunk, FakeClock, Reply, ScriptedModel, capture_events


async def call(scripted: ScriptedModel, mode: str, *args: object, **kwargs: object) -> Reply:
    if mode == "sync":
        return scripted(*args, **kwargs)
    return await scripted.acall(*args, **kwargs)


async def test_scripted_entries_in_order(mode: str) -> None:
    fixed = Reply("fixed", Usage(1, 2), tool_calls=({"name": "search"},))
    model = ScriptedModel(
        ["a reply of 20 chars.", fixed, lambda *a, **k: f"echo {a[0]}", KeyError, ValueError("v")],
        model="m0",
    )
    first = await call(model, mode, "a prompt of 20 chars")
    assert (first.text, first.content, first.model) == ("a reply of 20 chars.", first.text, "m0")
    assert first.usage == Usage(input_tokens=5, output_tokens=5)
    second = await call(model, mode, model="m9")
    assert (second.text, second.usage, second.model) == ("fixed", Usage(1, 2), "m9")
    assert second.tool_calls == ({"name": "search"},)
    assert (await call(model, mode, "hi")).text == "echo hi"
    with pytest.raises(KeyError):
        await call(model, mode)
    with pytest.raises(ValueError, match="v"):
        await call(model, mode)
    with pytest.raises(ScriptExhaustedError, match="call 6"):
        await call(model, mode)
    assert len(model.calls) == 6
    assert model.remaining == 0


async def test_message_lists_count_towards_input(mode: str) -> None:
    model = ScriptedModel(["ok"])
    reply = await call(model, mode, messages=[{"role": "user", "content": "x" * 40}, "skip"])
    assert reply.usage.input_tokens == 10


async def test_repeat_last_and_extend(mode: str) -> None:
    model = ScriptedModel(["same"], repeat_last=True)
    assert [(await call(model, mode)).text for _ in range(3)] == ["same"] * 3
    model.extend(["new"])
    assert (await call(model, mode)).text == "new"


def test_callable_may_return_an_exception() -> None:
    model = ScriptedModel([lambda: RuntimeError("scripted")])
    with pytest.raises(RuntimeError, match="scripted"):
        model()


def test_invalid_entries_and_options() -> None:
    with pytest.raises(TypeError, match="script entries"):
        ScriptedModel([42])()  # type: ignore[list-item]
    with pytest.raises(ValueError, match="chunk_size"):
        ScriptedModel([], chunk_size=0)


async def test_stream_forms() -> None:
    model = ScriptedModel(["abcdefghij", ""], chunk_size=4)
    chunks = list(model.stream())
    assert [c.text for c in chunks] == ["abcd", "efgh", "ij"]
    assert [c.usage for c in chunks[:-1]] == [None, None]
    assert chunks[-1].usage == Usage(1, 2)
    achunks = [c async for c in model.astream()]
    assert achunks == [Chunk("", Usage(1, 1))]


def test_thread_safe() -> None:
    model = ScriptedModel([str(i) for i in range(400)])
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            text = model().text
            with lock:
                out.append(text)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out, key=int) == [str(i) for i in range(400)]


async def test_fake_clock() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock.monotonic() == clock.time() == 100.0
    clock.advance(5)
    clock.sleep(2.5)
    await clock.asleep(0.5)
    clock.sleep(-1)  # a negative sleep is recorded but does not move time back
    assert clock() == 108.0
    assert clock.sleeps == [2.5, 0.5, -1]
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)


def test_capture_events_only_while_open() -> None:
    with capture_events() as events, Agent("a").session() as session:
        session.run_tool("t", lambda: None)
    with Agent("a").session():
        pass
    assert events.names() == [
        "agent.started",
        "tool.called",
        "tool.completed",
        "agent.completed",
    ]
    assert len(events.named("tool.called")) == 1
