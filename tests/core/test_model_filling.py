"""`@agent_turn(model=...)` hands its model to a function that takes a `model` argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentmw import Agent, Stack, agent_turn
from agentmw.middleware import Fallback


class Overloaded(Exception):
    status_code = 529


async def _run(mode: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs) if mode == "sync" else await fn(*args, **kwargs)


def _pair(body: Callable[[str, str], str]) -> tuple[Any, Any]:
    def sync_fn(prompt: str, *, model: str) -> str:
        return body(prompt, model)

    async def async_fn(prompt: str, *, model: str) -> str:
        return body(prompt, model)

    return sync_fn, async_fn


async def test_a_required_keyword_only_model_is_filled_from_the_decorator(mode: str) -> None:
    sync_fn, async_fn = _pair(lambda prompt, model: f"{model}: {prompt}")
    ask = agent_turn(model="small")(sync_fn if mode == "sync" else async_fn)
    with Agent("w", stack=Stack()).session() as session:
        assert await _run(mode, ask, "hi") == "small: hi"
        assert await _run(mode, ask, "hi", model="large") == "large: hi"  # the caller wins
    started = [e.model for e in session.events if e.name == "turn.started"]
    assert started == ["small", "large"]


async def test_a_positional_model_is_left_alone(mode: str) -> None:
    def sync_fn(prompt: str, model: str = "default") -> str:
        return model

    async def async_fn(prompt: str, model: str = "default") -> str:
        return model

    ask = agent_turn(model="small")(sync_fn if mode == "sync" else async_fn)
    assert await _run(mode, ask, "hi", "given") == "given"
    assert await _run(mode, ask, "hi") == "small"


async def test_fallback_switches_the_filled_model(mode: str) -> None:
    def body(prompt: str, model: str) -> str:
        if model == "primary":
            raise Overloaded("try later")
        return f"{model} says hi"

    sync_fn, async_fn = _pair(body)
    ask = agent_turn(model="primary", stack=Stack([Fallback(["backup"])]))(
        sync_fn if mode == "sync" else async_fn
    )
    assert await _run(mode, ask, "hi") == "backup says hi"


def test_methods_get_the_model_too() -> None:
    class Client:
        @agent_turn(model="small")
        def ask(self, prompt: str, *, model: str) -> str:
            return model

    # The decorator fills the required `model` at run time; no annotation can make a
    # keyword-only parameter optional (ParamSpec cannot drop or default one).
    assert Client().ask("hi") == "small"  # type: ignore[call-arg]


def test_functions_without_a_model_parameter_get_no_keyword() -> None:
    @agent_turn(model="small")
    def ask(prompt: str) -> str:
        return prompt

    assert ask("hi") == "hi"

    @agent_turn(model="small")
    def loose(prompt: str, **options: Any) -> dict[str, Any]:
        return options

    assert loose("hi") == {}


@pytest.mark.parametrize("decorator", [agent_turn, agent_turn()])
def test_without_a_decorator_model_nothing_is_filled(
    decorator: Callable[[Callable[..., str]], Callable[..., str]],
) -> None:
    @decorator
    def ask(prompt: str, *, model: str = "own") -> str:
        return model

    assert ask("hi") == "own"
