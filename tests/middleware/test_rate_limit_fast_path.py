"""RateLimit's uncontended path: admitted without suspending; a line, once formed, is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from agentmw import Call, RateLimitedError
from agentmw.middleware import RateLimit
from agentmw.testing import FakeClock


def finished_at_once(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` one step: its result when it finished without suspending, else fail."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    pytest.fail("the coroutine suspended")


def test_uncontended_async_acquire_does_not_suspend() -> None:
    limiter = RateLimit(rpm=3, tpm=1000, clock=FakeClock())
    first = finished_at_once(limiter.aacquire(400))
    assert (first.key, first.usage.input_tokens, first.waited) == ("default", 400, 0.0)
    second = limiter.acquire(400)  # the sync twin draws from the same buckets
    assert second.waited == 0.0
    call = Call(
        kind="turn", name="t", fn=lambda: None, model="m", args=(), kwargs={"max_tokens": 10}
    )
    finished_at_once(limiter.abefore(call))
    assert call.meta[limiter._meta].waited == 0.0


async def test_a_newcomer_queues_behind_a_waiter_even_when_it_would_fit() -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=600, clock=clock)
    await limiter.aacquire(500)
    gate = asyncio.Event()
    order: list[int] = []

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()
        clock.advance(seconds)

    limiter._asleep = gated_sleep

    async def take(tokens: int) -> None:
        await limiter.aacquire(tokens)
        order.append(tokens)

    big = asyncio.create_task(take(300))  # must wait: 500 + 300 > 600
    await asyncio.sleep(0)
    assert limiter._lines.busy("default")
    small = asyncio.create_task(take(50))  # would fit now, but the line is first come first served
    await asyncio.sleep(0.01)
    assert order == []
    gate.set()
    await asyncio.gather(big, small)
    assert order == [300, 50]
    assert not limiter._lines.busy("default")


def test_sync_newcomer_also_queues_behind_a_waiter() -> None:
    limiter = RateLimit(tpm=600, clock=FakeClock(), max_wait=0)
    limiter.acquire(600)
    with pytest.raises(RateLimitedError, match=r"a wait of 0\.100s exceeds max_wait"):
        limiter.acquire(1)
    assert not limiter._lines.busy("default")  # the refused caller left no ticket behind
