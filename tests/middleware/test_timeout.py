"""`Timeout`: per-attempt deadline on every path; late results are discarded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from agentmw import Agent, Stack, TurnTimeoutError, agent_turn
from agentmw.middleware import Timeout
from agentmw.testing import capture_events

from ..support import consume


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan")])
def test_seconds_must_be_positive_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        Timeout(seconds)


@pytest.mark.parametrize("seconds", ["1", True, None])
def test_seconds_must_be_a_number(seconds: Any) -> None:
    with pytest.raises(TypeError, match="seconds"):
        Timeout(seconds)


def test_error_type() -> None:
    error = TurnTimeoutError(0.5, "ask")
    assert isinstance(error, TimeoutError)
    assert (error.seconds, error.name) == (0.5, "ask")


def test_sync_deadline_in_worker_thread_discards_late_result() -> None:
    release = threading.Event()
    finished: list[str] = []
    threads: list[str] = []

    @agent_turn(stack=Stack([Timeout(0.05)]))
    def hang() -> str:
        threads.append(threading.current_thread().name)
        release.wait(5)
        finished.append("late")
        return "late"

    with capture_events() as events, pytest.raises(TurnTimeoutError, match="'hang'"):
        hang()
    assert events.named("timeout.expired")[0].data == {"seconds": 0.05, "attempt": 1}
    release.set()
    for _ in range(200):
        if finished:
            break
        threading.Event().wait(0.005)
    assert finished == ["late"]  # it ran on, but nobody got the result
    assert threads[0].startswith("agentmw-worker:hang")


async def test_fast_calls_return_and_errors_propagate(mode: str) -> None:
    def ok() -> str:
        return "fine"

    async def aok() -> str:
        return "fine"

    def bad() -> None:
        raise KeyError("x")

    async def abad() -> None:
        raise KeyError("x")

    stack = Stack([Timeout(2.0)])
    assert await consume(mode, agent_turn(stack=stack)(ok if mode == "sync" else aok)) == "fine"
    with pytest.raises(KeyError):
        await consume(mode, agent_turn(stack=stack)(bad if mode == "sync" else abad))


async def test_async_deadline() -> None:
    cancelled: list[bool] = []

    @agent_turn(stack=Stack([Timeout(0.05)]))
    async def hang() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    with pytest.raises(TurnTimeoutError):
        await hang()
    assert cancelled == [True]


async def test_the_calls_own_timeout_error_is_not_rewritten(mode: str) -> None:
    def own() -> None:
        raise TimeoutError("socket")

    async def aown() -> None:
        raise TimeoutError("socket")

    fn = agent_turn(stack=Stack([Timeout(2.0)]))(own if mode == "sync" else aown)
    with pytest.raises(TimeoutError) as info:
        await consume(mode, fn)
    assert not isinstance(info.value, TurnTimeoutError)


def test_sync_stream_deadline_and_success() -> None:
    release = threading.Event()

    @agent_turn(stack=Stack([Timeout(0.1)]))
    def slow() -> Iterator[str]:
        yield "first"
        release.wait(5)
        yield "late"

    @agent_turn(stack=Stack([Timeout(2.0)]))
    def fast() -> Iterator[str]:
        yield from ("a", "b")

    got: list[str] = []

    def drain() -> None:
        got.extend(slow())

    try:
        with pytest.raises(TurnTimeoutError):
            drain()
    finally:
        release.set()
    assert got == ["first"]
    assert list(fast()) == ["a", "b"]


def test_sync_stream_error_and_early_close() -> None:
    @agent_turn(stack=Stack([Timeout(2.0)]))
    def broken() -> Iterator[str]:
        yield "a"
        raise KeyError("x")

    @agent_turn(stack=Stack([Timeout(2.0)]))
    def endless() -> Generator[int, None, None]:
        n = 0
        while True:
            yield n
            n += 1

    with pytest.raises(KeyError):
        list(broken())
    gen = endless()
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()


async def test_async_stream_deadline_and_success() -> None:
    @agent_turn(stack=Stack([Timeout(0.05)]))
    async def slow() -> AsyncIterator[str]:
        yield "first"
        await asyncio.sleep(5)
        yield "late"

    @agent_turn(stack=Stack([Timeout(2.0)]))
    async def fast() -> AsyncIterator[str]:
        for chunk in ("a", "b"):
            yield chunk

    got: list[str] = []

    async def drain() -> None:
        async for chunk in slow():
            got.append(chunk)

    with pytest.raises(TurnTimeoutError):
        await drain()
    assert got == ["first"]
    assert await consume("astream", fast) == ["a", "b"]


def test_timeouts_inside_a_session_fail_the_turn() -> None:
    release = threading.Event()
    try:
        with (
            Agent("a", stack=[Timeout(0.05)]).session() as session,
            pytest.raises(TurnTimeoutError),
        ):
            session.run_turn(release.wait, 5)
    finally:
        release.set()
    failed = [e for e in session.events if e.name == "turn.failed"]
    assert failed[0].detail == "agentmw.errors.TurnTimeoutError"
    assert session.iterations == 1
