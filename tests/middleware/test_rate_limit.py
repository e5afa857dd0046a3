"""RateLimit: waits, max_wait, oversize requests, reconcile, refunds, FIFO, 429 cooldowns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from types import SimpleNamespace
from typing import Any

import pytest

from agentmw import Agent, RateLimitedError, Stack, Usage, agent_turn
from agentmw.middleware import RateLimit
from agentmw.stores import InMemoryLimiterStore
from agentmw.testing import FakeClock, Reply, ScriptedModel, capture_events
from tests.support import consume

from ._helpers import turn


async def _reserve(mode: str, limiter: RateLimit, tokens: int, key: str = "default") -> Any:
    if mode == "sync":
        return limiter.acquire(tokens, key=key)
    return await limiter.aacquire(tokens, key=key)


async def test_waits_for_the_next_slot(mode: str) -> None:
    clock = FakeClock()
    limiter = RateLimit(rpm=60, clock=clock)
    for _ in range(60):
        assert (await _reserve(mode, limiter, 0)).waited == 0
    res = await _reserve(mode, limiter, 0)
    assert res.waited == pytest.approx(1.0)
    assert clock.sleeps == [pytest.approx(1.0)]


async def test_max_wait_raises_at_once_without_calling(mode: str) -> None:
    clock = FakeClock()
    agent = Agent("r", stack=[RateLimit(tpm=600, max_wait=5, clock=clock)])
    model = ScriptedModel([Reply("ok", Usage(600, 0))] * 3)
    with agent.session() as s:
        await turn(mode, s, model, max_tokens=600)
        with pytest.raises(RateLimitedError) as info:
            await turn(mode, s, model, max_tokens=600)
    assert len(model.calls) == 1
    assert info.value.retry_after == pytest.approx(60.0)
    assert clock.sleeps == []


async def test_request_larger_than_burst_rejected(mode: str) -> None:
    limiter = RateLimit(tpm=1000, burst=0.5, clock=FakeClock())
    with pytest.raises(RateLimitedError, match="exceeds the burst of 500") as info:
        await _reserve(mode, limiter, 501)
    assert info.value.retry_after is None


async def test_reconcile_refunds_and_charges(mode: str) -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=1000, clock=clock)
    if mode == "sync":
        with limiter.reserve(tokens=900) as r:
            r.reconcile(100)
        with limiter.reserve(tokens=900) as r:  # 100 + 900 fits the burst of 1000
            r.reconcile(1000)  # charged 100 more than reserved: now 1100 used
    else:
        async with limiter.areserve(tokens=900) as r:
            await r.areconcile(100)
        async with limiter.areserve(tokens=900) as r:
            await r.areconcile(1000)
    assert clock.sleeps == []
    res = await _reserve(mode, limiter, 1)
    assert res.waited == pytest.approx(6.06, abs=0.01)  # 101 tokens over at 1000/min


async def test_failed_call_refunds_its_tokens(mode: str) -> None:
    clock = FakeClock()
    agent = Agent("r", stack=[RateLimit(tpm=1000, clock=clock)])
    model = ScriptedModel([ValueError("boom"), Reply("ok", Usage(900, 0))])
    with agent.session() as s:
        with pytest.raises(ValueError, match="boom"):
            await turn(mode, s, model, max_tokens=900)
        await turn(mode, s, model, max_tokens=900)
    assert clock.sleeps == []


async def test_exception_in_block_refunds(mode: str) -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=1000, clock=clock)
    if mode == "sync":
        with pytest.raises(KeyError), limiter.reserve(tokens=1000):
            raise KeyError("x")
    else:
        with pytest.raises(KeyError):
            async with limiter.areserve(tokens=1000):
                raise KeyError("x")
    assert (await _reserve(mode, limiter, 1000)).waited == 0


async def test_cancelled_call_refunds_its_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=1000, clock=clock)
    entered = asyncio.Event()

    async def worker() -> None:
        async with limiter.areserve(tokens=1000):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(worker())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await limiter.aacquire(1000)).waited == 0


async def test_cancelled_waiter_leaves_the_line() -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=600, clock=clock)
    await limiter.aacquire(600)
    gate = asyncio.Event()

    async def blocked_sleep(seconds: float) -> None:
        await gate.wait()

    limiter._asleep = blocked_sleep
    task = asyncio.create_task(limiter.aacquire(300))
    await asyncio.sleep(0.01)
    assert limiter._lines.busy("default")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not limiter._lines.busy("default")


class _Err(Exception):
    """Shaped like an SDK's 429: a status code and a response carrying Retry-After."""

    status_code = 429

    def __init__(self) -> None:
        super().__init__("slow down")
        self.response = SimpleNamespace(status_code=429, headers={"retry-after": "30"})


async def test_provider_429_puts_the_key_in_cooldown(mode: str) -> None:
    clock = FakeClock()
    agent = Agent("r", stack=[RateLimit(rpm=1000, clock=clock)])
    model = ScriptedModel([_Err(), "ok", "ok"])
    with capture_events() as events, agent.session() as s:
        with pytest.raises(_Err):
            await turn(mode, s, model, model="m")
        await turn(mode, s, model, model="m")
        await turn(mode, s, model, model="other")
    assert clock.sleeps == [pytest.approx(30.0)]  # "other" is another key: no wait
    assert events.named("rate_limit.cooldown")[0].data["seconds"] == 30.0
    assert events.named("rate_limit.waited")[0].data["key"] == "m"


async def test_fifo_async_large_request_not_starved() -> None:
    clock = FakeClock()
    limiter = RateLimit(tpm=600, clock=clock)  # 10 tokens/s, burst 600
    await limiter.aacquire(600)
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        await limiter.aacquire(tokens)
        order.append(name)

    big = asyncio.create_task(take("big", 500))
    await asyncio.sleep(0)
    smalls = [asyncio.create_task(take(f"small{i}", 10)) for i in range(3)]
    await asyncio.gather(big, *smalls)
    assert order == ["big", "small0", "small1", "small2"]


class _GatedClock(FakeClock):
    """The first sleep blocks until the test opens the gate, so others can line up meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = threading.Event()
        self.gate = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        self.gate.wait(5)
        super().sleep(seconds)


def test_fifo_threads_large_request_not_starved() -> None:
    clock = _GatedClock()
    limiter = RateLimit(tpm=600, clock=clock)
    limiter.acquire(600)
    order: list[str] = []

    def take(name: str, tokens: int) -> None:
        limiter.acquire(tokens)
        order.append(name)

    big = threading.Thread(target=take, args=("big", 500))
    big.start()
    assert clock.sleeping.wait(5)
    smalls = []
    for i in range(3):
        t = threading.Thread(target=take, args=(f"small{i}", 10))
        t.start()
        smalls.append(t)
        while len(limiter._lines.pending("default")) < i + 2:
            threading.Event().wait(0.001)
    clock.gate.set()
    for t in [big, *smalls]:
        t.join(5)
    assert order == ["big", "small0", "small1", "small2"]


def test_options_validated() -> None:
    with pytest.raises(ValueError, match="at least one of rpm"):
        RateLimit()
    with pytest.raises(ValueError, match="tpm must be a number > 0"):
        RateLimit(tpm=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(tpm=10, burst=2)
    with pytest.raises(ValueError, match="max_wait"):
        RateLimit(tpm=10, max_wait=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tpm": "10"}, "tpm must be a number, got str '10'"),
        ({"store": object()}, r"store must be a LimiterStore \(missing aacquire, aadjust"),
        ({"clock": 5}, "clock must be a callable returning seconds, got int 5"),
        ({"key": 5}, "key must be a string, a callable call -> str, or None, got int 5"),
        ({"estimate": 5}, "estimate must be a callable call -> Usage, got int 5"),
        ({"max_wait": True}, "max_wait must be a number, got bool True"),
    ],
)
def test_wrong_types_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("rpm", 10)
    with pytest.raises(TypeError, match=message):
        RateLimit(**kwargs)


async def test_reconciles_with_real_usage_in_a_session(mode: str) -> None:
    clock = FakeClock()
    agent = Agent("r", stack=[RateLimit(tpm=1000, clock=clock)])
    model = ScriptedModel([Reply("ok", Usage(50, 50))] * 3)
    with agent.session() as s:
        for _ in range(3):  # each reserves 800 by max_tokens but really uses 100
            await turn(mode, s, model, max_tokens=800)
    assert clock.sleeps == []


def test_budget_and_rate_limit_share_one_estimate_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agentmw.middleware.budget as budget_module
    import agentmw.middleware.rate_limit.layer as rate_limit_module
    from agentmw import Agent, Stack, Usage
    from agentmw.middleware import Budget
    from agentmw.usage import estimate_usage

    calls: list[int] = []

    def counting(args: Any, kwargs: Any) -> Usage:
        calls.append(1)
        return estimate_usage(args, kwargs)

    monkeypatch.setattr(budget_module, "estimate_usage", counting)
    monkeypatch.setattr(rate_limit_module, "estimate_usage", counting)
    stack = Stack(
        [Budget(100, enforce=True, unpriced="allow"), RateLimit(rpm=10_000, tpm=10_000_000)]
    )
    with Agent("w", stack=stack).session() as session:
        session.run_turn(lambda prompt: "ok", "x" * 400, model="m", usage=Usage(100, 5))
    assert len(calls) == 1


# -- the async paths never block; streams settle and cool down like calls ----------------------
class AsyncOnlyStore:
    """A LimiterStore whose blocking methods fail: the async path must use the `a*` twins."""

    def __init__(self) -> None:
        self.inner = InMemoryLimiterStore()
        self.used: list[str] = []

    def _blocking(self, *args: Any) -> Any:
        raise AssertionError("a blocking store method was called on the async path")

    acquire = wait_time = adjust = cooldown = _blocking

    async def aacquire(self, key: str, demands: Any, now: float) -> float:
        self.used.append("aacquire")
        return self.inner.acquire(key, demands, now)

    async def await_time(self, key: str, demands: Any, now: float) -> float:
        self.used.append("await_time")
        return self.inner.wait_time(key, demands, now)

    async def aadjust(self, key: str, demands: Any, now: float) -> None:
        self.used.append("aadjust")
        self.inner.adjust(key, demands, now)

    async def acooldown(self, key: str, until: float) -> None:
        self.used.append("acooldown")
        self.inner.cooldown(key, until)


async def test_async_call_uses_only_async_store_methods() -> None:
    store = AsyncOnlyStore()
    agent = Agent("r", stack=[RateLimit(tpm=10_000, store=store, clock=FakeClock())])
    model = ScriptedModel([Reply("ok", Usage(10, 10)), ValueError("boom"), _Err()])
    async with agent.session() as s:
        await s.arun_turn(model.acall, max_tokens=500)  # reconciled: 500 reserved, 20 used
        with pytest.raises(ValueError, match="boom"):
            await s.arun_turn(model.acall, max_tokens=500)  # refunded
        with pytest.raises(_Err):
            await s.arun_turn(model.acall, max_tokens=500)  # refunded and cooled down
    # each call: acquire, then reconcile (success) or refund (failure), plus the 429's cooldown
    assert store.used == [*["aacquire", "aadjust"] * 3, "acooldown"]


async def test_async_stream_uses_only_async_store_methods() -> None:
    store = AsyncOnlyStore()
    stack = Stack([RateLimit(tpm=10_000, store=store, clock=FakeClock())])
    fail: list[BaseException] = []

    @agent_turn(stack=stack, model="m")
    async def talk(prompt: str, max_tokens: int) -> AsyncGenerator[str, None]:
        if fail:
            raise fail.pop()
        for chunk in ("a ", "short ", "answer"):
            await asyncio.sleep(0)
            yield chunk

    assert [c async for c in talk("hi", max_tokens=500)] == ["a ", "short ", "answer"]
    async with aclosing(talk("hi", max_tokens=500)) as agen:
        assert await anext(agen) == "a "  # the consumer stops early: reconciled too
    fail.append(_Err())
    with pytest.raises(_Err):
        _ = [c async for c in talk("hi", max_tokens=500)]
    # each call: acquire, then reconcile (success) or refund (failure), plus the 429's cooldown
    assert store.used == [*["aacquire", "aadjust"] * 3, "acooldown"]


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_stream_429_before_its_first_chunk_starts_the_cooldown(path: str) -> None:
    clock = FakeClock()
    stack = Stack([RateLimit(rpm=1000, clock=clock)])
    fail = [_Err()]

    if path == "stream":

        def talk() -> Iterator[str]:
            if fail:
                raise fail.pop()
            yield "ok"

    else:

        async def talk() -> AsyncIterator[str]:  # type: ignore[misc]
            if fail:
                raise fail.pop()
            yield "ok"

    fn = agent_turn(stack=stack, model="m")(talk)
    with capture_events() as events:
        with pytest.raises(_Err):
            await consume(path, fn)
        assert await consume(path, fn) == ["ok"]
    assert clock.sleeps == [pytest.approx(30.0)]  # the next reservation waited out the pause
    (cooldown,) = events.named("rate_limit.cooldown")
    assert (cooldown.data["key"], cooldown.data["seconds"]) == ("m", 30.0)
