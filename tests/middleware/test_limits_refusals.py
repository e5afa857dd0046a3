"""Counts that mean what they say: a control-flow refusal never uses up a `Limits` slot.

Every refusal is tried with its layer above `Limits` and below it, on the sync and the async
path: after three refusals the session still has all its turns (or tool calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from agentmw import (
    Agent,
    BudgetExceededError,
    CircuitOpenError,
    GuardrailViolation,
    LimitExceededError,
    MaxIterationsExceededError,
    Middleware,
    ModelPricing,
    PermissionDeniedError,
    PolicyViolationError,
    RateLimitedError,
    Session,
    Usage,
    register_pricing,
)
from agentmw.errors import ConcurrencyLimitError
from agentmw.guardrails import DenyPatterns
from agentmw.middleware import (
    Budget,
    CircuitBreaker,
    Concurrency,
    Guardrails,
    Limits,
    Permissions,
    Policy,
    RateLimit,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.policy import PolicyEngine, Rule, any_of, deny, fact
from agentmw.testing import Reply, ScriptedModel, capture_events

BLOCKED, OK = "i14a-blocked-model", "i14a-ok-model"
# Priced, so an enforced Budget (which refuses unpriced models) sees real models.
for _model in (BLOCKED, OK):
    register_pricing(_model, ModelPricing(input_per_million=1, output_per_million=2))


def _tripped_breaker(kinds: str) -> CircuitBreaker:
    breaker = CircuitBreaker("b", failure_threshold=1, recovery_timeout=3600, kinds=kinds)
    blocked = "forbidden" if kinds == "tool" else BLOCKED

    def fail(*_: Any, **__: Any) -> None:
        raise ConnectionError("down")

    # Trip the circuit of the blocked model (or tool) in a session of its own.
    with Agent("trip", stack=[breaker]).session() as session:
        run = (
            (lambda: session.run_tool(blocked, fail))
            if kinds == "tool"
            else (lambda: session.run_turn(fail, model=blocked))
        )
        with pytest.raises(ConnectionError):
            run()
    return breaker


def _spent_rate_limit() -> RateLimit:
    def key(call: Any) -> str:  # the blocked model shares one key, each other call its own
        return BLOCKED if call.model == BLOCKED else f"free-{call.step}"

    layer = RateLimit(rpm=1, burst=1, max_wait=0, clock=lambda: 0.0, key=key)
    with Agent("spend", stack=[layer]).session() as session:
        session.run_turn(ScriptedModel(["x"]), model=BLOCKED)  # the one request of the minute
    return layer


def _full_concurrency() -> Concurrency:
    layer = Concurrency(1, max_wait=0)
    assert layer.store.acquire(BLOCKED, 1, "held-by-the-test") == 0.0
    return layer


def _policy() -> Policy:
    when = any_of(fact("model") == BLOCKED, fact("tool") == "forbidden")
    return Policy(PolicyEngine([Rule("no", when, deny("not that one"))]))


def _budget() -> Budget:
    return Budget(1, enforce=True, estimate=lambda c: Decimal(5 if c.model == BLOCKED else 0))


def _permissions() -> Permissions:
    roles = {"agent": RolePermissions(allow=("t",), deny=("forbidden",))}
    return Permissions(PermissionPolicy(roles))


TURN_REFUSALS: dict[str, tuple[Callable[[], Middleware], type[BaseException]]] = {
    "circuit open": (lambda: _tripped_breaker("turn"), CircuitOpenError),
    "rate limited past max_wait": (_spent_rate_limit, RateLimitedError),
    "concurrency cap past max_wait": (_full_concurrency, ConcurrencyLimitError),
    "policy deny": (_policy, PolicyViolationError),
    "guardrail block": (lambda: Guardrails([DenyPatterns([r"\bbad\b"])]), GuardrailViolation),
    "budget refusal": (_budget, BudgetExceededError),
}
TOOL_REFUSALS: dict[str, tuple[Callable[[], Middleware], type[BaseException]]] = {
    "circuit open": (lambda: _tripped_breaker("tool"), CircuitOpenError),
    "policy deny": (_policy, PolicyViolationError),
    "permission denied": (_permissions, PermissionDeniedError),
    "guardrail block": (lambda: Guardrails([DenyPatterns([r"\bbad\b"])]), GuardrailViolation),
}


def _stack(refuser: Middleware, limits: Limits, position: str) -> list[Middleware]:
    return [refuser, limits] if position == "above" else [limits, refuser]


async def _turn(mode: str, session: Session, model: str, prompt: str) -> Any:
    fake = ScriptedModel([Reply("ok", Usage(10, 5))])
    if mode == "sync":
        return session.run_turn(fake, prompt, model=model)[0]
    return (await session.arun_turn(fake.acall, prompt, model=model))[0]


async def _tool(mode: str, session: Session, name: str, arg: str) -> Any:
    if mode == "sync":
        return session.run_tool(name, str.upper, arg)

    async def afn(value: str) -> str:
        await asyncio.sleep(0)
        return value.upper()

    return await session.arun_tool(name, afn, arg)


@pytest.mark.parametrize("position", ["above", "below"])
@pytest.mark.parametrize("refusal", sorted(TURN_REFUSALS))
async def test_a_refused_turn_keeps_no_turn(mode: str, refusal: str, position: str) -> None:
    build, error = TURN_REFUSALS[refusal]
    limits = Limits(max_turns=2)
    agent = Agent("agent", stack=_stack(build(), limits, position))
    blocked_prompt = "a bad prompt" if refusal == "guardrail block" else "fine"
    with capture_events() as events:
        async with agent.session() as session:
            for _ in range(3):
                with pytest.raises(error):
                    await _turn(mode, session, BLOCKED, blocked_prompt)
            assert session.iterations == 0
            assert (await _turn(mode, session, OK, "fine")).text == "ok"
            assert (await _turn(mode, session, OK, "fine")).text == "ok"
            with pytest.raises(MaxIterationsExceededError) as info:
                await _turn(mode, session, OK, "fine")
    assert (info.value.observed, info.value.ceiling) == (3, 2)
    assert session.iterations == 2
    assert len(events.named("limit.exceeded")) == 1


@pytest.mark.parametrize("position", ["above", "below"])
@pytest.mark.parametrize("refusal", sorted(TOOL_REFUSALS))
async def test_a_refused_tool_call_keeps_no_slot(mode: str, refusal: str, position: str) -> None:
    build, error = TOOL_REFUSALS[refusal]
    limits = Limits(max_tool_calls=2, per_tool={"t": 2, "forbidden": 2})
    agent = Agent("agent", stack=_stack(build(), limits, position))
    name, arg = ("t", "a bad arg") if refusal == "guardrail block" else ("forbidden", "x")
    async with agent.session() as session:
        for _ in range(3):
            with pytest.raises(error):
                await _tool(mode, session, name, arg)
        assert session.tool_calls == 0
        assert session.tool_count(name) == 0
        assert await _tool(mode, session, "t", "x") == "X"
        assert await _tool(mode, session, "t", "y") == "Y"
        with pytest.raises(LimitExceededError) as info:
            await _tool(mode, session, "t", "z")
    assert info.value.limit == "max_tool_calls"
    assert session.tool_calls == 2


async def test_a_real_failure_counts_and_a_refusal_does_not(mode: str) -> None:
    # The case: max_turns=3, one real failure, then the circuit it opened refuses.
    breaker = CircuitBreaker("b", failure_threshold=1, recovery_timeout=3600)
    agent = Agent("agent", stack=[Limits(max_turns=3), breaker])

    def fail(*_: Any) -> None:
        raise ConnectionError("down")

    async def afail(*_: Any) -> None:
        raise ConnectionError("down")

    async with agent.session() as session:
        failing = (
            _sync_call(session.run_turn, fail, model=BLOCKED)
            if mode == "sync"
            else session.arun_turn(afail, model=BLOCKED)
        )
        with pytest.raises(ConnectionError):
            await failing
        with pytest.raises(CircuitOpenError):
            await _turn(mode, session, BLOCKED, "fine")
        assert session.iterations == 1
        await _turn(mode, session, OK, "fine")
        await _turn(mode, session, OK, "fine")
        with pytest.raises(MaxIterationsExceededError):
            await _turn(mode, session, OK, "fine")
    assert session.iterations == 3


async def _sync_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


# -- per-tool limits and the tool_count fact ------------------------------------------------
async def test_per_tool_limit_names_the_tool(mode: str) -> None:
    limits = Limits(per_tool={"search": 2})
    agent = Agent("agent", stack=[limits])
    with capture_events() as events:
        async with agent.session() as session:
            for arg in ("a", "b"):
                await _tool(mode, session, "search", arg)
            for arg in ("c", "d", "e"):
                await _tool(mode, session, "fetch", arg)  # other tools are not capped
            with pytest.raises(LimitExceededError) as info:
                await _tool(mode, session, "search", "c")
    error = info.value
    assert (error.limit, error.tool, error.observed, error.ceiling) == ("per_tool", "search", 3, 2)
    assert str(error) == "per_tool limit of tool 'search' reached: 3 > 2"
    assert session.tool_count("search") == 2
    assert session.tool_count("fetch") == 3
    assert session.tool_calls == 5
    [refused] = events.named("limit.exceeded")
    assert refused.tool == "search"
    assert refused.data["limit"] == "per_tool"


async def test_the_tool_count_fact_counts_the_current_tool(mode: str) -> None:
    rule = Rule("two-searches", fact("tool_count") >= 2, deny("enough searching"))
    policy = Policy(PolicyEngine([rule]))
    agent = Agent("agent", stack=[policy])
    async with agent.session() as session:
        await _tool(mode, session, "search", "a")
        await _tool(mode, session, "search", "b")
        await _tool(mode, session, "fetch", "c")  # its own count: 0
        await _tool(mode, session, "fetch", "d")  # 1
        await _turn(mode, session, OK, "fine")  # a turn has no tool_count: the rule never matches
        with pytest.raises(PolicyViolationError, match="two-searches"):
            await _tool(mode, session, "search", "e")  # the third search: two so far
    assert session.tool_count("search") == 2
    assert session.tool_count("fetch") == 2


def test_per_tool_checks_its_argument() -> None:
    with pytest.raises(TypeError, match=r"per_tool must be a dict of tool name -> most calls"):
        Limits(per_tool=["search"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"per_tool\['search'\] must be an int >= 0, got -1"):
        Limits(per_tool={"search": -1})
    with pytest.raises(ValueError, match=r"per_tool key must be a non-blank string"):
        Limits(per_tool={" ": 1})


class _CallsBackIn:
    """A sink that, on a refusal, runs a call in another session through the same layer."""

    def __init__(self, other: Agent, mode: str) -> None:
        self.other, self.mode, self.ran = other, mode, 0

    def emit(self, event: Any) -> None:
        if event.name != "limit.exceeded":
            return
        with self.other.session() as session:  # a turn and a tool: each takes the layer's lock
            session.run_turn(lambda: Usage(), model="m")
            session.run_tool("probe", lambda: "ok")
        self.ran += 1


@pytest.mark.parametrize("limit", ["max_turns", "max_tool_calls", "per_tool"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_refusals_are_announced_outside_the_layers_lock(limit: str, mode: str) -> None:
    # One Limits layer serves every session under one lock: a sink (user code) reached while
    # it was held would deadlock on its next call through the layer. Run in a thread so a
    # regression fails on the join timeout instead of hanging the suite.
    choices: dict[str, dict[str, Any]] = {
        "max_turns": {"max_turns": 1},
        "max_tool_calls": {"max_tool_calls": 1},
        "per_tool": {"per_tool": {"t": 1}},
    }
    options = choices[limit]
    layer = Limits(**options)
    other = Agent("other", stack=[layer])
    sink = _CallsBackIn(other, mode)
    agent = Agent("limited", stack=[layer], event_sink=sink)
    errors: list[BaseException] = []

    async def arun(session: Session) -> None:
        for _ in range(2):
            if limit == "max_turns":
                await session.arun_turn(lambda: Usage(), model="m")
            else:
                await session.arun_tool("t", lambda: "x")

    def run() -> None:
        try:
            if mode == "async":

                async def main() -> None:
                    async with agent.session() as session:
                        await arun(session)

                asyncio.run(main())
                return
            with agent.session() as session:
                for _ in range(2):
                    if limit == "max_turns":
                        session.run_turn(lambda: Usage(), model="m")
                    else:
                        session.run_tool("t", lambda: "x")
        except BaseException as exc:
            errors.append(exc)

    import threading

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the refusal was announced under the layer's lock"
    assert len(errors) == 1
    expected = MaxIterationsExceededError if limit == "max_turns" else LimitExceededError
    assert isinstance(errors[0], expected)
    assert sink.ran == 1
