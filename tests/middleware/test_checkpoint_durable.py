"""Checkpoint's durable side effects: write-ahead steps, idempotency keys, in-flight steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agentmw
from agentmw import Agent, agent_tool, current_call
from agentmw.middleware import Checkpoint, InFlightStepError, Retry
from agentmw.stores import InMemorySaver, SqliteSaver, StepRecord
from agentmw.stores._checkpoint_records import derive_idempotency_key
from agentmw.testing import capture_events


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return InMemorySaver() if request.param == "memory" else SqliteSaver(tmp_path / "c.db")


class Crash(BaseException):
    """Stands in for the process dying mid-call: not an Exception, so no failed record."""


class Payments:
    """A fake external API that dedupes on the idempotency key, as real payment APIs do."""

    def __init__(self) -> None:
        self.charges: dict[str, int] = {}
        self.requests = 0

    def charge(self, amount: int, key: str) -> str:
        self.requests += 1
        self.charges.setdefault(key, amount)
        return f"charge-{key[-6:]}"


def tools(api: Payments, effects: Any, crash: list[bool], seen: list[Any]) -> tuple[Any, Any]:
    def body(amount: int, idempotency_key: str) -> str:
        call = current_call()
        assert call is not None
        seen.append((idempotency_key, call.idempotency_key, call.name))
        receipt = api.charge(amount, idempotency_key)
        if crash and crash.pop():
            raise Crash
        return receipt

    # A function declaring `idempotency_key` receives it; the default keeps callers typed.
    @agent_tool(name="pay", effects=effects)
    def pay(amount: int, idempotency_key: str = "") -> str:
        return body(amount, idempotency_key)

    @agent_tool(name="pay", effects=effects)
    async def apay(amount: int, idempotency_key: str = "") -> str:
        return body(amount, idempotency_key)

    return pay, apay


async def run_pay(agent: Agent, mode: str, fn: Any, afn: Any, thread: str = "t") -> Any:
    if mode == "sync":
        with agent.session(thread_id=thread):
            return fn(10)
    async with agent.session(thread_id=thread):
        return await afn(10)


async def test_the_step_is_written_ahead_with_its_key_before_the_tool_runs(
    saver: Any, mode: str
) -> None:
    held: list[StepRecord] = []

    @agent_tool
    def ship(order: str) -> str:
        held.extend(saver.get_steps("t"))
        return "shipped"

    @agent_tool(name="ship")
    async def aship(order: str) -> str:
        held.extend(saver.get_steps("t"))
        return "shipped"

    agent = Agent("w", stack=[Checkpoint(saver)])
    if mode == "sync":
        with agent.session(thread_id="t"):
            ship("o1")
    else:
        async with agent.session(thread_id="t"):
            await aship("o1")
    key = derive_idempotency_key("t", 1, "tool", "ship")
    assert [(r.step, r.name, r.status, r.result, r.idempotency_key) for r in held] == [
        (1, "ship", "started", None, key)
    ]
    after = saver.get_steps("t")
    assert [(r.status, r.result, r.idempotency_key) for r in after] == [
        ("completed", '"shipped"', key)
    ]
    assert after[0].started_at == held[0].started_at  # the same record, completed


async def test_an_idempotent_step_in_flight_reruns_with_the_same_key(saver: Any, mode: str) -> None:
    api, seen = Payments(), list[Any]()
    pay, apay = tools(api, "idempotent", [True], seen)
    agent = Agent("w", stack=[Checkpoint(saver)])
    with pytest.raises(Crash):
        await run_pay(agent, mode, pay, apay)
    assert [r.status for r in saver.get_steps("t")] == ["started"]
    with capture_events() as events:
        receipt = await run_pay(agent, mode, pay, apay)
    key = derive_idempotency_key("t", 1, "tool", "pay")
    assert seen == [(key, key, "pay"), (key, key, "pay")]  # the same key both times
    assert api.requests == 2
    assert api.charges == {key: 10}  # the API deduped: charged once
    assert receipt == f"charge-{key[-6:]}"
    assert [(r.status, r.idempotency_key) for r in saver.get_steps("t")] == [("completed", key)]
    flight = [e for e in events if e.name == "checkpoint.in_flight"]
    assert [(e.data["checkpoint_step"], e.data["rerun"]) for e in flight] == [(1, True)]


async def test_a_once_step_in_flight_raises_until_resolved(saver: Any, mode: str) -> None:
    api, seen = Payments(), list[Any]()
    pay, apay = tools(api, "once", [True], seen)
    agent = Agent("w", stack=[Checkpoint(saver)])
    with pytest.raises(Crash):
        await run_pay(agent, mode, pay, apay)
    key = derive_idempotency_key("t", 1, "tool", "pay")
    with capture_events() as events, pytest.raises(InFlightStepError) as info:
        await run_pay(agent, mode, pay, apay)
    err = info.value
    assert (err.step, err.name, err.idempotency_key, err.thread_id) == (1, "pay", key, "t")
    assert isinstance(err, agentmw.ControlFlowError)
    message = str(err)
    assert f"step 1 ('pay', idempotency key {key}) was in flight" in message
    assert "saver.resolve_step('t', 1, result=...)" in message
    assert "saver.resolve_step('t', 1, rerun=True)" in message
    assert "agentmw steps resolve t 1 --db DB --result JSON | --rerun" in message
    assert 'Checkpoint(on_in_flight="rerun")' in message
    assert api.requests == 1  # the resume did not run it again
    flight = [e for e in events if e.name == "checkpoint.in_flight"]
    assert [(e.data["checkpoint_step"], e.data["rerun"]) for e in flight] == [(1, False)]
    # An operator checked the payment service: it went through. Mark the step done.
    saver.resolve_step("t", 1, result="charge-by-hand")
    assert await run_pay(agent, mode, pay, apay) == "charge-by-hand"  # replayed
    assert api.requests == 1


async def test_a_once_step_resolved_for_rerun_runs_again_with_its_key(
    saver: Any, mode: str
) -> None:
    api, seen = Payments(), list[Any]()
    pay, apay = tools(api, "once", [True], seen)
    agent = Agent("w", stack=[Checkpoint(saver)])
    with pytest.raises(Crash):
        await run_pay(agent, mode, pay, apay)
    if mode == "sync":
        saver.resolve_step("t", 1, rerun=True)
    else:
        await saver.aresolve_step("t", 1, rerun=True)
    assert [r.status for r in saver.get_steps("t")] == ["rerun"]
    key = derive_idempotency_key("t", 1, "tool", "pay")
    assert await run_pay(agent, mode, pay, apay) == f"charge-{key[-6:]}"
    assert [s[0] for s in seen] == [key, key]
    assert [r.status for r in saver.get_steps("t")] == ["completed"]


async def test_on_in_flight_rerun_reruns_once_steps(saver: Any, mode: str) -> None:
    api, seen = Payments(), list[Any]()
    pay, apay = tools(api, "once", [True], seen)
    agent = Agent("w", stack=[Checkpoint(saver, on_in_flight="rerun")])
    with pytest.raises(Crash):
        await run_pay(agent, mode, pay, apay)
    key = derive_idempotency_key("t", 1, "tool", "pay")
    assert await run_pay(agent, mode, pay, apay) == f"charge-{key[-6:]}"
    assert api.requests == 2
    assert api.charges == {key: 10}


async def test_a_failed_step_keeps_its_key_on_rerun(saver: Any, mode: str) -> None:
    keys: list[str] = []
    fail = [False, True]  # popped from the end: the first session fails, the second succeeds

    def body(idempotency_key: str) -> str:
        keys.append(idempotency_key)
        if fail.pop():
            raise ConnectionError("smtp down")
        return "sent"

    @agent_tool(name="mail")
    def mail(to: str, *, idempotency_key: str = "") -> str:
        return body(idempotency_key)

    @agent_tool(name="mail")
    async def amail(to: str, *, idempotency_key: str = "") -> str:
        return body(idempotency_key)

    agent = Agent("w", stack=[Checkpoint(saver)])
    for _ in range(2):
        try:
            if mode == "sync":
                with agent.session(thread_id="t"):
                    mail("a@b")
            else:
                async with agent.session(thread_id="t"):
                    await amail("a@b")
        except ConnectionError:
            pass
    assert keys == [derive_idempotency_key("t", 1, "tool", "mail")] * 2
    assert [r.status for r in saver.get_steps("t")] == ["completed"]


async def test_keys_outside_a_thread_are_fresh_per_call_and_kept_across_retries(
    mode: str,
) -> None:
    keys: list[str] = []
    fails = [False, False, False, True]  # popped from the end: only the first attempt fails

    def body(item: str, idempotency_key: str) -> str:
        keys.append(idempotency_key)
        if fails.pop():
            raise ConnectionError("flaky")
        return item

    @agent_tool
    def push(item: str, idempotency_key: str = "") -> str:
        return body(item, idempotency_key)

    @agent_tool(name="push")
    async def apush(item: str, idempotency_key: str = "") -> str:
        return body(item, idempotency_key)

    agent = Agent("w", stack=[Retry(attempts=2, base=0.0, sleep=lambda s: None, asleep=_no_sleep)])
    if mode == "sync":
        with agent.session():
            push("a")
            push("b")
            push("c", idempotency_key="mine")  # a key the caller passes wins
    else:
        async with agent.session():
            await apush("a")
            await apush("b")
            await apush("c", idempotency_key="mine")
    assert keys[0] == keys[1]  # the retry kept the key
    assert keys[0].startswith("agentmw-")
    assert keys[2] != keys[0]  # the next call got its own
    assert keys[3] == "mine"


async def _no_sleep(seconds: float) -> None:
    return None


async def test_current_call_is_the_running_call_and_none_outside(mode: str) -> None:
    seen: list[Any] = []

    @agent_tool
    def look(q: str) -> str:
        seen.append(current_call())
        return q

    @agent_tool(name="look")
    async def alook(q: str) -> str:
        seen.append(current_call())
        return q

    assert current_call() is None
    with capture_events():
        if mode == "sync":
            look("x")
        else:
            await alook("x")
    assert current_call() is None
    (call,) = seen
    assert isinstance(call, agentmw.Call)
    assert (call.kind, call.name, call.args) == ("tool", "look", ("x",))
    assert agentmw.current_call is agentmw.core.current_call


def test_current_call_in_a_streamed_tool_is_set_only_inside_it() -> None:
    seen: list[Any] = []

    @agent_tool
    def chunks(n: int) -> Any:
        for i in range(n):
            seen.append(current_call())
            yield i

    out = []
    for chunk in chunks(2):
        out.append((chunk, current_call()))
    assert out == [(0, None), (1, None)]  # the consumer never sees the tool's call
    assert len(seen) == 2
    assert seen[0] is seen[1]
    assert seen[0].name == "chunks"


async def test_current_call_in_an_async_streamed_tool() -> None:
    seen: list[Any] = []

    @agent_tool
    async def chunks(n: int, idempotency_key: str = "") -> Any:
        for i in range(n):
            seen.append((current_call(), idempotency_key))
            yield i

    out = [(c, current_call()) async for c in chunks(2)]
    assert out == [(0, None), (1, None)]
    assert seen[0][0] is seen[1][0]
    assert seen[0][1] == seen[0][0].idempotency_key


def test_options_are_validated() -> None:
    with pytest.raises(
        ValueError, match="effects must be one of pure, idempotent, once; got 'twice'"
    ):
        agent_tool(effects="twice")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="effects must be one of pure, idempotent, once"):
        agent_tool(effects=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="checkpoint_key must be a callable call -> str"):
        agent_tool(checkpoint_key="args")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="checkpoint_key must be a callable call -> str"):
        agentmw.agent_turn(checkpoint_key=3)  # type: ignore[call-overload]
    saver = InMemorySaver()
    with pytest.raises(ValueError, match="on_in_flight must be one of raise, rerun; got 'skip'"):
        Checkpoint(saver, on_in_flight="skip")
    with pytest.raises(TypeError, match="on_in_flight must be one of raise, rerun"):
        Checkpoint(saver, on_in_flight=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be a callable call -> str"):
        Checkpoint(saver, key="name")  # type: ignore[arg-type]
