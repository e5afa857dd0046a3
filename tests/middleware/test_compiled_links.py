"""Layers that compile their own link (`Middleware.compile_link`) behave as their hooks do.

Retry, Telemetry, CircuitBreaker, Budget and Limits fuse their common path into one closure; a
subclass that overrides a path keeps its override, and the fused path makes the same decisions
(counts, events, errors) as the derived one, sync and async.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentmw import Agent, CircuitOpenError, Middleware, Stack, Usage
from agentmw.core.call import Call
from agentmw.core.chain import _TERMINALS
from agentmw.core.middleware import Next
from agentmw.errors import LimitExceededError, MaxIterationsExceededError
from agentmw.middleware import CircuitBreaker, Limits, Retry, Telemetry
from agentmw.stores import InMemoryBreakerStore


class Boom(ConnectionError):
    """A counted, retryable failure."""


def _fails(times: int) -> Any:
    state = {"left": times, "calls": 0}

    def model() -> Usage:
        state["calls"] += 1
        if state["left"] > 0:
            state["left"] -= 1
            raise Boom("down")
        return Usage(input_tokens=1, output_tokens=1)

    async def amodel() -> Usage:
        return model()

    return state, model, amodel


async def _run(session: Any, mode: str, fn: Any, afn: Any) -> Any:
    if mode == "sync":
        return session.run_turn(fn, model="m")
    return await session.arun_turn(afn, model="m")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_subclasses_that_override_a_path_keep_it(mode: str) -> None:
    seen: list[str] = []

    class MyRetry(Retry):
        def handle(self, call: Call, call_next: Next) -> Any:
            seen.append("retry.handle")
            return super().handle(call, call_next)

        def ahandle(self, call: Call, call_next: Any) -> Any:
            seen.append("retry.ahandle")
            return super().ahandle(call, call_next)

    class MyTelemetry(Telemetry):
        def handle(self, call: Call, call_next: Next) -> Any:
            seen.append("telemetry.handle")
            return super().handle(call, call_next)

        def ahandle(self, call: Call, call_next: Any) -> Any:
            seen.append("telemetry.ahandle")
            return super().ahandle(call, call_next)

    class MyBreaker(CircuitBreaker):
        def before(self, call: Call) -> None:
            seen.append("breaker.before")
            super().before(call)

    layers = [MyTelemetry(), MyRetry(attempts=1), MyBreaker("b")]
    for layer in layers:
        assert layer.compile_link(mode, lambda call: None) is None
    _, model, amodel = _fails(0)
    async with Agent("subclassed", stack=Stack(layers)).session() as session:
        await _run(session, mode, model, amodel)
    prefix = "" if mode == "sync" else "a"
    assert seen == [f"telemetry.{prefix}handle", f"retry.{prefix}handle", "breaker.before"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fused_retry_retries_and_counts_attempts(mode: str) -> None:
    retry = Retry(attempts=3, base=0, jitter="none")
    assert retry.compile_link(mode, lambda call: None) is not None
    state, model, amodel = _fails(2)
    async with Agent("retrying", stack=[retry]).session() as session:
        await _run(session, mode, model, amodel)
    assert state["calls"] == 3
    completed = [e for e in session.events if e.name == "turn.completed"]
    assert completed[0].data["attempts"] == 3
    state, model, amodel = _fails(5)
    async with Agent("giving-up", stack=[Retry(attempts=2, base=0, jitter="none")]).session() as s:
        with pytest.raises(Boom):
            await _run(s, mode, model, amodel)
    assert state["calls"] == 2
    assert [e.name for e in s.events].count("turn.failed") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fused_breaker_opens_and_refuses_like_its_hooks(mode: str) -> None:
    store = InMemoryBreakerStore()
    breaker = CircuitBreaker("fused", failure_threshold=2, recovery_timeout=60, store=store)
    assert breaker.compile_link(mode, lambda call: None) is not None
    state, model, amodel = _fails(10)
    async with Agent("breaking", stack=[breaker]).session() as session:
        for _ in range(2):
            with pytest.raises(Boom):
                await _run(session, mode, model, amodel)
        with pytest.raises(CircuitOpenError):
            await _run(session, mode, model, amodel)
    assert state["calls"] == 2  # the third call never reached the model
    names = [e.name for e in session.events]
    assert names.count("breaker.opened") == 1
    assert breaker.state("m").value == "open"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fused_breaker_success_resets_the_failure_count(mode: str) -> None:
    breaker = CircuitBreaker("resets", failure_threshold=2)
    state, model, amodel = _fails(1)
    async with Agent("resetting", stack=[breaker]).session() as session:
        with pytest.raises(Boom):
            await _run(session, mode, model, amodel)
        await _run(session, mode, model, amodel)  # a success after one failure: count cleared
        state["left"] = 1
        with pytest.raises(Boom):
            await _run(session, mode, model, amodel)
        await _run(session, mode, model, amodel)
    assert breaker.state("m").value == "closed"
    assert "breaker.opened" not in [e.name for e in session.events]


def test_a_ratio_breaker_keeps_the_hooks() -> None:
    ratio = CircuitBreaker("ratio", failure_ratio=0.5)
    assert ratio.compile_link("sync", lambda call: None) is None
    assert CircuitBreaker("streams").compile_link("stream", lambda call: None) is None


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("enforce", [False, True])
async def test_fused_budget_records_and_enforces_like_its_hooks(mode: str, enforce: bool) -> None:
    from decimal import Decimal

    from agentmw import BudgetExceededError, ModelPricing
    from agentmw.middleware import Budget
    from agentmw.pricing import PricingTable

    table = PricingTable()
    table.register("m", ModelPricing(input_per_million=1_000_000, output_per_million=0))
    budget = Budget(1.5, enforce=enforce, precheck=False)
    assert budget.compile_link(mode, lambda call: None) is not None

    def model() -> Usage:
        return Usage(input_tokens=1, output_tokens=0)  # $1 a turn

    async def amodel() -> Usage:
        return model()

    agent = Agent("spending", stack=[budget], pricing=table)
    async with agent.session() as session:
        await _run(session, mode, model, amodel)
        await _run(session, mode, model, amodel)  # $2: past the budget
        if enforce:
            with pytest.raises(BudgetExceededError):
                await _run(session, mode, model, amodel)
        else:
            await _run(session, mode, model, amodel)
    assert session.cost_usd == (Decimal(2) if enforce else Decimal(3))
    names = [e.name for e in session.events]
    assert names.count("budget.exceeded") == 1
    assert names.count("budget.refused") == (1 if enforce else 0)


class Refuses(Middleware):
    """Refuses its first turn below Limits, as a breaker or a budget does (ControlFlowError)."""

    def __init__(self) -> None:
        self.left = 1

    def before(self, call: Call) -> None:
        if self.left:
            self.left -= 1
            raise CircuitOpenError("b", "m", 1.0)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fused_limits_admit_and_refuse_turns_like_their_hooks(mode: str) -> None:
    limits = Limits(max_turns=2)
    assert limits.compile_link(mode, lambda call: None) is not None
    agent = Agent("l", stack=Stack([limits, Refuses()]))
    ok = Usage(input_tokens=1, output_tokens=1)
    async with agent.session() as session:
        with pytest.raises(CircuitOpenError):  # refused below: the slot is given back
            await _run(session, mode, lambda: ok, _async(ok))
        await _run(session, mode, lambda: ok, _async(ok))
        await _run(session, mode, lambda: ok, _async(ok))
        with pytest.raises(MaxIterationsExceededError) as info:
            await _run(session, mode, lambda: ok, _async(ok))
    assert (info.value.observed, info.value.ceiling) == (3, 2)
    names = [e.name for e in session.events]
    assert names.count("limit.exceeded") == 1
    assert names.count("turn.completed") == 2
    assert session.iterations == 2  # a refused turn is not counted (ControlFlowError)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_limits_with_usage_ceilings_or_tools_take_the_hooks(mode: str) -> None:
    limits = Limits(max_turns=10, max_total_tokens=3, max_tool_calls=1)
    agent = Agent("l", stack=Stack([limits]))
    big = Usage(input_tokens=2, output_tokens=2)
    async with agent.session() as session:
        await _run(session, mode, lambda: big, _async(big))
        with pytest.raises(LimitExceededError) as info:  # 4 tokens > 3: the next turn
            await _run(session, mode, lambda: big, _async(big))
        assert info.value.limit == "max_total_tokens"
        if mode == "sync":
            session.run_tool("t", lambda: 1)
            with pytest.raises(LimitExceededError):
                session.run_tool("t", lambda: 1)
        else:
            await session.arun_tool("t", lambda: 1)
            with pytest.raises(LimitExceededError):
                await session.arun_tool("t", lambda: 1)


def test_a_limits_subclass_overriding_a_hook_keeps_it() -> None:
    seen: list[str] = []

    class MyLimits(Limits):
        def before(self, call: Call) -> None:
            seen.append(call.kind)
            super().before(call)

    layer = MyLimits(max_turns=1)
    assert layer.compile_link("sync", lambda call: None) is None
    with Agent("l", stack=Stack([layer])).session() as session:
        session.run_turn(lambda: Usage(input_tokens=1, output_tokens=1))
        with pytest.raises(MaxIterationsExceededError):
            session.run_turn(lambda: Usage(input_tokens=1, output_tokens=1))
    assert seen == ["turn", "turn"]


def _async(value: Any) -> Any:
    async def fn() -> Any:
        return value

    return fn


async def test_an_innermost_breaker_runs_the_terminal_itself() -> None:
    from agentmw import agent_tool, agent_turn
    from agentmw.core.context import current_call

    breaker = CircuitBreaker("inner", failure_threshold=2)
    link = breaker.compile_link("async", _TERMINALS["async"])
    assert link is not None
    assert link.__name__ == "abreaker_terminal"
    assert breaker.compile_link("async", lambda call: None).__name__ == "abreaker"  # type: ignore[union-attr]
    seen: list[Any] = []

    @agent_turn(model="m", usage=lambda result: Usage(input_tokens=len(result), output_tokens=1))
    async def ask(prompt: str) -> str:
        seen.append(current_call())
        return prompt * 2

    @agent_tool
    async def pay(amount: int, idempotency_key: str) -> str:
        return idempotency_key

    @agent_turn(model="down")
    async def down() -> Usage:
        raise Boom("no")

    agent = Agent("b", stack=Stack([breaker]))
    async with agent.session() as session:
        assert await ask("abc") == "abcabc"
        key = await pay(5)  # type: ignore[call-arg]  # the terminal passes the key
        for _ in range(2):
            with pytest.raises(Boom):
                await down()
        with pytest.raises(CircuitOpenError):
            await down()
    assert seen[0] is not None
    assert seen[0].name == "ask"
    assert current_call() is None  # reset after the call
    assert isinstance(key, str)
    assert key
    assert session.usage.input_tokens == 6
    names = [e.name for e in session.events]
    assert names.count("breaker.opened") == 1
    assert names.count("turn.failed") == 3
