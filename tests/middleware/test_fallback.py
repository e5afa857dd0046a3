from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmw import Agent, ControlFlowError, agent_turn
from agentmw.classify import FailureScenario
from agentmw.middleware import CircuitBreaker, Fallback, Retry
from agentmw.testing import FakeClock, ScriptedModel, capture_events
from tests.errors import http


class PerModel:
    """A model function whose behaviour depends on its `model` keyword."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.models = {name: ScriptedModel(items, model=name) for name, items in script.items()}
        self.seen: list[str] = []

    def __call__(self, prompt: str, *, model: str) -> Any:
        self.seen.append(model)
        return self.models[model](prompt, model=model)


def run(mode: str, layers: list[Any], fn: PerModel, model: str = "primary") -> tuple[Any, Any]:
    agent = Agent("writer", stack=layers)
    if mode == "sync":

        @agent_turn
        def turn(prompt: str, *, model: str) -> Any:
            return fn(prompt, model=model)

        with agent.session() as session:
            try:
                return turn("hi", model=model), session
            except Exception as exc:
                return exc, session

    @agent_turn
    async def aturn(prompt: str, *, model: str) -> Any:
        await asyncio.sleep(0)
        return fn(prompt, model=model)

    async def body() -> tuple[Any, Any]:
        async with agent.session() as session:
            try:
                return await aturn("hi", model=model), session
            except Exception as exc:
                return exc, session

    return asyncio.run(body())


def test_switches_in_order(mode: str) -> None:
    fn = PerModel({"primary": [http(503)], "second": [http(500)], "third": ["done"]})
    with capture_events() as events:
        result, session = run(mode, [Fallback(["second", "third"])], fn)
    assert result.text == "done"
    assert result.model == "third"
    assert fn.seen == ["primary", "second", "third"]
    switched = [e.data for e in events.named("fallback.switched")]
    assert switched == [
        {"from_model": "primary", "to_model": "second", "scenario": "overloaded"},
        {"from_model": "second", "to_model": "third", "scenario": "server_error"},
    ]
    assert [r["action"] for r in session.recoveries] == ["fallback", "fallback"]


def test_last_error_when_all_fail(mode: str) -> None:
    last = http(502)
    fn = PerModel({"primary": [http(503)], "second": [last]})
    result, _ = run(mode, [Fallback(["second"])], fn)
    assert result is last


def test_not_retryable_does_not_switch(mode: str) -> None:
    error = http(400)
    fn = PerModel({"primary": [error], "second": ["never"]})
    result, _ = run(mode, [Fallback(["second"])], fn)
    assert result is error
    assert fn.seen == ["primary"]


def test_control_flow_does_not_switch(mode: str) -> None:
    error = ControlFlowError("budget")
    fn = PerModel({"primary": [error], "second": ["never"]})
    result, _ = run(mode, [Fallback(["second"])], fn)
    assert result is error


def test_on_scenarios(mode: str) -> None:
    fn = PerModel({"primary": [http(400, code="context_length_exceeded")], "big": ["fits"]})
    result, _ = run(mode, [Fallback(["big"], on=[FailureScenario.CONTEXT_OVERFLOW])], fn)
    assert result.text == "fits"


def test_retries_each_model_then_falls_back(mode: str) -> None:
    clock = FakeClock()
    retry = Retry(2, jitter="none", base=1.0, sleep=clock.sleep, asleep=clock.asleep)
    fn = PerModel({"primary": [http(503), http(503)], "second": [http(503), "ok"]})
    result, _ = run(mode, [Fallback(["second"]), retry], fn)
    assert result.text == "ok"
    assert fn.seen == ["primary", "primary", "second", "second"]
    assert clock.sleeps == [1.0, 1.0]


def test_open_breaker_falls_back_with_per_model_keys(mode: str) -> None:
    clock = FakeClock()
    cb = CircuitBreaker("llm", failure_threshold=1, clock=clock)
    stack = [Fallback(["second"]), cb]
    fn = PerModel({"primary": [http(503)], "second": ["ok", "ok again"]})
    result, _ = run(mode, stack, fn)
    assert result.text == "ok"
    assert cb.state("primary").value == "open"
    assert cb.state("second").value == "closed"
    with capture_events() as events:
        result, _ = run(mode, stack, fn)
    assert result.text == "ok again"
    assert fn.seen == ["primary", "second", "second"]  # the open primary was not called again
    assert events.named("fallback.switched")[0].data["scenario"] == "circuit_open"


def test_starts_after_the_calls_model_in_the_list(mode: str) -> None:
    fn = PerModel({"b": [http(503)], "c": ["ok"]})
    result, _ = run(mode, [Fallback(["a", "b", "c"])], fn, model="b")
    assert result.text == "ok"
    assert fn.seen == ["b", "c"]


def test_invalid_models() -> None:
    for bad in ([], ["ok", ""]):
        with pytest.raises(ValueError, match="models"):
            Fallback(bad)
    for wrong, message in [("gpt", "models must be a list"), ([3], r"models\[0\] must be a str")]:
        with pytest.raises(TypeError, match=message):
            Fallback(wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on"):
        Fallback(["x"], on=["nope"])


def test_stream_switches_only_before_first_chunk(mode: str) -> None:
    seen: list[str] = []

    def script(model: str) -> list[str]:
        seen.append(model)
        if model == "primary":
            raise http(503)
        if model == "second":
            return ["x", "y"]
        raise AssertionError("third must not run")

    def gen(*, model: str) -> Any:
        yield from script(model)
        if model == "second":
            raise http(503)

    async def agen(*, model: str) -> Any:
        for chunk in script(model):
            yield chunk
        if model == "second":
            raise http(503)

    layer = Fallback(["second", "third"])
    got: list[str] = []

    def consume() -> None:
        if mode == "sync":
            for chunk in agent_turn(stack=[layer])(gen)(model="primary"):
                got.append(chunk)
            return

        async def aconsume() -> None:
            async for chunk in agent_turn(stack=[layer])(agen)(model="primary"):
                got.append(chunk)

        asyncio.run(aconsume())

    with pytest.raises(Exception, match="request failed"):
        consume()
    assert got == ["x", "y"]
    assert seen == ["primary", "second"]
