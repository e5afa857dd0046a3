"""Loud configuration: `Stack.check`, `StackOrderWarning`, and `Stack.default`'s new options."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentmw import Agent, Middleware, Stack, Usage, agent_turn
from agentmw.errors import StackOrderWarning
from agentmw.guardrails import DenyPatterns
from agentmw.middleware import (
    Budget,
    Checkpoint,
    CircuitBreaker,
    Concurrency,
    Fallback,
    Guardrails,
    Limits,
    Permissions,
    Policy,
    RateLimit,
    Retry,
    Telemetry,
    Timeout,
)
from agentmw.permissions import PermissionPolicy
from agentmw.policy import PolicyEngine
from agentmw.stores import InMemorySaver


@contextmanager
def _quiet() -> Iterator[None]:
    """A block in which any warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _warned(layers: list[Middleware]) -> tuple[Stack, list[StackOrderWarning]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack = Stack(layers)
    found = [w.message for w in caught if isinstance(w.message, StackOrderWarning)]
    return stack, found


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            lambda: [Retry(), Budget(1)],
            "Budget inside Retry: every attempt is checked and charged against the budget "
            "again; put Budget before Retry",
        ),
        (
            lambda: [Retry(), Limits(max_turns=3)],
            "Limits inside Retry: every attempt is checked and counted against the limits "
            "again; put Limits before Retry",
        ),
        (
            lambda: [RateLimit(rpm=60), Retry()],
            "RateLimit outside Retry: a retry attempt takes no reservation of its own, so "
            "retries go unthrottled; put RateLimit after Retry",
        ),
        (
            lambda: [CircuitBreaker("llm"), Retry()],
            "llm (CircuitBreaker) outside Retry: the breaker sees one outcome per call instead "
            "of every attempt; put llm (CircuitBreaker) after Retry",
        ),
        (
            lambda: [Timeout(5), Retry(name="again")],
            "Timeout outside again (Retry): its deadline covers every attempt and backoff, so "
            "a hung attempt is never retried; put Timeout after again (Retry)",
        ),
        (
            lambda: [Limits(max_turns=3), Checkpoint(InMemorySaver())],
            "Checkpoint inside Limits: a replayed step still is counted against the limits; "
            "put Checkpoint before Limits",
        ),
        (
            lambda: [Concurrency(2), Checkpoint(InMemorySaver())],
            "Checkpoint inside Concurrency: a replayed step still takes a concurrency slot; "
            "put Checkpoint before Concurrency",
        ),
    ],
)
def test_an_order_that_breaks_a_guarantee_warns_naming_both_layers(
    layers: Any, message: str
) -> None:
    stack, found = _warned(layers())
    assert [str(w) for w in found] == [message]
    assert stack.check() == [message]
    outer, inner = stack[0], stack[1]
    assert (found[0].outer, found[0].inner) == (outer.name, inner.name)
    assert issubclass(StackOrderWarning, UserWarning)


def test_every_problem_is_reported() -> None:
    stack, found = _warned([Checkpoint(InMemorySaver()), RateLimit(rpm=1), Retry(), Budget(1)])
    assert [w.inner for w in found] == ["Retry", "Budget"]
    assert len(stack.check()) == 2


def test_check_false_accepts_a_deliberate_order_and_its_edits() -> None:
    with _quiet():
        stack = Stack([Retry(), Budget(1)], check=False)
        edited = stack.insert_after(Budget, Limits(max_turns=2)).insert_after(Limits, Timeout(1))
        assert edited.with_timeout(2.0) is not None
        assert len((stack + Stack([Limits(max_turns=1)], check=False)).check()) == 2
    assert len(edited.check()) == 2  # check() still tells
    with pytest.raises(TypeError, match=r"check must be True or False, got str"):
        Stack([], check="no")  # type: ignore[arg-type]


def test_an_edit_that_breaks_the_order_warns() -> None:
    stack = Stack([Budget(1), Retry()])
    with pytest.warns(StackOrderWarning, match=r"^Budget inside Retry"):
        stack.without(Budget).insert_after(Retry, Budget(1))


def test_the_canonical_order_and_stack_default_raise_no_warning() -> None:
    with _quiet():
        full = Stack(
            [
                Telemetry(),
                Checkpoint(InMemorySaver()),
                Policy(PolicyEngine([])),
                Permissions(PermissionPolicy({})),
                Guardrails([DenyPatterns([r"x"])]),
                Budget(1),
                Limits(max_turns=3),
                Fallback(["b"]),
                Retry(),
                CircuitBreaker("breaker"),
                RateLimit(rpm=60),
                Concurrency(4),
                Timeout(5),
            ]
        )
        default = Stack.default(
            budget_usd=1,
            enforce_budget=True,
            saver=InMemorySaver(),
            policy=PolicyEngine([]),
            permissions=PermissionPolicy({}),
            guardrails=[DenyPatterns([r"x"])],
            rate_limit={"rpm": 60},
            fallback=["b"],
            concurrency=4,
        ).with_timeout(5.0)
    assert full.check() == []
    assert default.check() == []
    assert [type(x).__name__ for x in default] == [
        type(x).__name__ for x in full
    ]  # Stack.default's order is the canonical one, Concurrency beside RateLimit


def test_a_layer_of_your_own_declares_its_role() -> None:
    class MyRetry(Middleware):
        order_role = "retry"

    _, found = _warned([MyRetry(), Budget(1)])
    assert [str(w) for w in found] == [
        "Budget inside MyRetry: every attempt is checked and charged against the budget again; "
        "put Budget before MyRetry"
    ]
    assert Middleware.order_role is None


# -- Stack.default: loud options -------------------------------------------------------------
def test_enforce_budget_without_an_amount_is_refused() -> None:
    with pytest.raises(ValueError, match=r"enforce_budget=True needs budget_usd"):
        Stack.default(enforce_budget=True)
    with pytest.raises(ValueError, match=r"Budget given as budget_usd does not enforce"):
        Stack.default(budget_usd=Budget(1), enforce_budget=True)
    assert (
        Stack.default(budget_usd=Budget(1, enforce=True), enforce_budget=True).get(Budget).enforce
    )


def test_fallback_and_concurrency_options_check_their_values() -> None:
    with pytest.raises(ValueError, match=r"fallback must name at least one model"):
        Stack.default(fallback=[])
    with pytest.raises(TypeError, match=r"fallback accepts None, False, a list of model names"):
        Stack.default(fallback="gpt-4o")
    with pytest.raises(
        ValueError, match=r"concurrency must be an int >= 1 \(calls in flight\), got 0"
    ):
        Stack.default(concurrency=0)
    with pytest.raises(
        TypeError, match=r"concurrency accepts None, False, an int or a Concurrency"
    ):
        Stack.default(concurrency=True)
    layer = Concurrency(3, name="cap")
    assert Stack.default(concurrency=layer).get("cap") is layer
    assert Stack.default(concurrency=2).get(Concurrency).max_in_flight == 2
    assert Stack.default(fallback=("b", "c")).get(Fallback).models == ("b", "c")


async def test_stack_default_fallback_switches_models(mode: str) -> None:
    seen: list[str] = []

    def answer(model: str) -> Usage:
        seen.append(model)
        if model == "primary":
            raise ConnectionError("down")
        return Usage(1, 1)

    @agent_turn
    def call(*, model: str) -> Usage:
        return answer(model)

    @agent_turn
    async def acall(*, model: str) -> Usage:
        return answer(model)

    stack = Stack.default(
        fallback=["backup"], retry=Retry(2, base=0, cap=0), breaker=False, telemetry=False
    )
    async with Agent("a", stack=stack).session() as session:
        if mode == "sync":
            call(model="primary")
        else:
            await acall(model="primary")
    assert seen == ["primary", "primary", "backup"]
    assert session.iterations == 1


async def test_stack_default_concurrency_caps_calls_in_flight(mode: str) -> None:
    stack = Stack.default(concurrency=2, breaker=False, retry=False, telemetry=False)
    lock = threading.Lock()
    now = peak = 0

    def enter() -> None:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)

    def leave() -> None:
        nonlocal now
        with lock:
            now -= 1

    @agent_turn(model="m")
    def call() -> Usage:
        enter()
        threading.Event().wait(0.02)
        leave()
        return Usage(1, 1)

    @agent_turn(model="m")
    async def acall() -> Usage:
        enter()
        await asyncio.sleep(0.02)
        leave()
        return Usage(1, 1)

    async with Agent("a", stack=stack).session() as session:
        if mode == "sync":
            with session.executor(6) as pool:
                for f in [pool.submit(call) for _ in range(6)]:
                    f.result()
        else:
            await session.agather(*(acall() for _ in range(6)))
    assert peak == 2
    assert session.iterations == 6
