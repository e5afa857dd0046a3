"""RateLimit's uncontended path: admitted without suspending; a line, once formed, is kept;
the inlined in-memory decision of `aacquire` is the store's (admission, waits, FIFO, cancel)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentmw import Call, RateLimitedError
from agentmw.middleware import RateLimit, Reservation
from agentmw.stores import InMemoryLimiterStore
from agentmw.stores.gcra import EPSILON
from agentmw.testing import FakeClock
from agentmw.usage import ZERO_USAGE


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


# -- the inlined one-demand path of `aacquire` decides as the store does ---------------------
class _ViaStore(InMemoryLimiterStore):
    """Same GCRA, another type: RateLimit sends every decision through the store's methods."""


def _limiters(
    max_wait: float | None, **limits: Any
) -> tuple[tuple[RateLimit, FakeClock], tuple[RateLimit, FakeClock]]:
    fast_clock, slow_clock = FakeClock(), FakeClock()
    fast = RateLimit(max_wait=max_wait, clock=fast_clock, **limits)
    slow = RateLimit(max_wait=max_wait, clock=slow_clock, store=_ViaStore(), **limits)
    assert fast._lane is not None
    assert slow._lane is None
    return (fast, fast_clock), (slow, slow_clock)


def _tats(limiter: RateLimit) -> dict[tuple[str, str], float]:
    """The store's TATs by (dimension, key)."""
    columns: dict[str, dict[str, float]] = limiter.store._tat  # type: ignore[attr-defined]
    return {(dim, key): tat for dim, column in columns.items() for key, tat in column.items()}


Step = tuple[float, str, int, float]  # advance by, key, tokens (0: the inlined path), cooldown


async def _trace(
    limiter: RateLimit, clock: FakeClock, steps: list[Step], acquire: str
) -> list[tuple[str, float | None]]:
    out: list[tuple[str, float | None]] = []
    for advance, key, tokens, cooldown in steps:
        clock.advance(advance)
        if cooldown:
            limiter.store.cooldown(key, clock() + cooldown)
        try:
            if acquire == "sync":
                reservation = limiter.acquire(tokens, key=key)
            else:
                reservation = await limiter.aacquire(tokens, key=key)
        except RateLimitedError as exc:
            out.append(("refused", exc.retry_after))
        else:
            out.append(("admitted", reservation.waited))
    return out


limits_strategy = st.one_of(
    st.builds(lambda r, b: {"rpm": r, "burst": b}, st.floats(1, 10_000), st.floats(0.5, 1)),
    st.builds(lambda r, b: {"tpm": r, "burst": b}, st.floats(50, 10_000), st.floats(0.5, 1)),
)
steps_strategy = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0, 3, allow_nan=False)),
        st.sampled_from(["a", "b"]),
        st.one_of(st.just(0), st.just(0), st.integers(1, 25)),
        st.one_of(st.just(0.0), st.just(0.0), st.just(0.0), st.floats(0.01, 2)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(limits_strategy, steps_strategy, st.sampled_from([None, 0.0, 0.5]))
def test_inlined_path_takes_the_stores_decisions(
    limits: dict[str, float], steps: list[Step], max_wait: float | None
) -> None:
    """Admission, refusal (retry_after), wait time and the recorded TATs are equal, float for
    float, to a limiter that asks the store each time (and to the sync `acquire`)."""
    assume(limits.get("rpm", 1.0) * limits["burst"] >= 1)
    (fast, fast_clock), (slow, slow_clock) = _limiters(max_wait, **limits)
    (sync, sync_clock), _ = _limiters(max_wait, **limits)
    got = asyncio.run(_trace(fast, fast_clock, steps, "async"))
    want = asyncio.run(_trace(slow, slow_clock, steps, "async"))
    assert got == want
    assert asyncio.run(_trace(sync, sync_clock, steps, "sync")) == want
    assert fast_clock() == slow_clock() == sync_clock()
    assert _tats(fast) == _tats(slow) == _tats(sync)


def _ulps(x: float, k: int) -> float:
    for _ in range(abs(k)):
        x = math.nextafter(x, math.inf if k > 0 else -math.inf)
    return x


def _filled(store: InMemoryLimiterStore, **limits: Any) -> tuple[RateLimit, FakeClock]:
    """A limiter at t=0 whose bucket is past full: rpm by its burst of requests, tpm by a
    reconcile charging twice its burst."""
    clock = FakeClock()
    limiter = RateLimit(max_wait=0, clock=clock, store=store, **limits)
    burst = next(iter(limiter.rates.values())).burst
    if "rpm" in limits:
        for _ in range(int(burst)):
            limiter.acquire()
    else:
        limiter.acquire(int(burst)).reconcile(2 * int(burst))
    return limiter, clock


def _counting(fn: Callable[..., Any], calls: list[object]) -> Callable[..., Any]:
    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await fn(*args)

    return counted


@pytest.mark.parametrize(
    "limits",
    [{"rpm": 13}, {"rpm": 61}, {"rpm": 70, "burst": 0.5}, {"tpm": 53, "burst": 0.9}, {"tpm": 85}],
)
def test_inlined_path_decides_like_the_store_at_the_boundary(limits: dict[str, float]) -> None:
    """Right at the edge of admission (`ahead` within EPSILON, a few ulps either side of it,
    for `burst / per_second` and for its reciprocal form) both paths take the same decision."""
    limiter, _ = _filled(InMemoryLimiterStore(), **limits)
    ((rate, cost),) = limiter._zero_demands
    ((_, full),) = _tats(limiter).items()
    step = cost / rate.per_second
    windows = (rate.burst / rate.per_second, rate.burst * (1.0 / rate.per_second))
    assert windows[0] != windows[1]  # a rate where the reciprocal form would differ
    times = {_ulps(full + step - w - EPSILON, k) for w in windows for k in range(-3, 4)}
    decided = set()
    for now in sorted(times):
        outcomes: list[float] = []
        to_the_line: list[object] = []
        for store in (InMemoryLimiterStore(), _ViaStore()):
            limiter, clock = _filled(store, **limits)
            limiter._aacquire = _counting(limiter._aacquire, to_the_line)  # type: ignore[method-assign]
            clock.advance(now)
            assert clock() == now
            try:
                outcomes.append(asyncio.run(limiter.aacquire()).waited)
            except RateLimitedError as exc:
                outcomes.append(-(exc.retry_after or 0.0))
            if type(store) is InMemoryLimiterStore:
                # Admitted by the store: the inlined path admitted it (no trip to the line).
                assert (outcomes[0] == 0.0) == (not to_the_line), now
        assert outcomes[0] == outcomes[1], now
        decided.add(outcomes[0] == 0.0)
    assert decided == {True, False}  # the probes straddle the edge


async def test_inlined_path_waits_like_the_store_for_a_key_in_cooldown(mode: str) -> None:
    (fast, clock), (slow, slow_clock) = _limiters(None, rpm=60)
    for limiter, at in ((fast, clock), (slow, slow_clock)):
        limiter.store.cooldown("default", at() + 5)
    if mode == "sync":
        waits = [fast.acquire().waited, slow.acquire().waited]
    else:
        waits = [(await fast.aacquire()).waited, (await slow.aacquire()).waited]
    assert waits == [5.0, 5.0]
    # The cooldown is over; the key stays known to the store and is still decided there.
    assert (await fast.aacquire()).waited == (await slow.aacquire()).waited == 0.0
    assert _tats(fast) == _tats(slow)


def test_inlined_reservation_is_the_constructors() -> None:
    limiter = RateLimit(rpm=60, clock=FakeClock())
    fast = finished_at_once(limiter.aacquire(key="k"))
    built = Reservation(limiter, "k", ZERO_USAGE, 0.0)
    assert type(fast) is Reservation
    assert {s: getattr(fast, s) for s in Reservation.__slots__} == {
        s: getattr(built, s) for s in Reservation.__slots__
    }
    assert repr(fast) == repr(built)
    fast.refund()
    assert fast.settled is True
    fast.reconcile(10)  # settled once: nothing more happens
    assert fast.settled is True


async def test_inlined_reservation_settles_async() -> None:
    limiter = RateLimit(tpm=600, clock=FakeClock())
    reservation = await limiter.aacquire()
    assert reservation.usage is ZERO_USAGE
    await reservation.areconcile(600)  # charged after the fact: a minute's tokens at t=0
    assert reservation.settled is True
    assert limiter.store._tat["tpm"]["default"] == 60.0  # type: ignore[attr-defined]
    await reservation.arefund()  # already settled: nothing comes back
    assert limiter.store._tat["tpm"]["default"] == 60.0  # type: ignore[attr-defined]


async def test_inlined_newcomer_queues_behind_a_waiter_and_keeps_the_order() -> None:
    """A request without tokens fits at once (it costs 0 tpm) but a line exists: it queues."""
    clock = FakeClock()
    limiter = RateLimit(tpm=600, clock=clock)
    assert limiter._lane is not None
    await limiter.aacquire(500)
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()
        clock.advance(seconds)

    limiter._asleep = gated_sleep
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        await limiter.aacquire(tokens)
        order.append(name)

    big = asyncio.create_task(take("big", 300))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("none", 0))
    later = asyncio.create_task(take("none-2", 0))
    await asyncio.sleep(0)
    assert not small.done()
    assert not later.done()
    assert len(limiter._lines._lines["default"]) == 3  # both newcomers are in line
    await asyncio.sleep(0.01)
    assert order == []
    gate.set()
    await asyncio.gather(big, small, later)
    assert order == ["big", "none", "none-2"]
    assert not limiter._lines.busy("default")
    assert finished_at_once(limiter.aacquire()).waited == 0.0  # no line: the inlined path again


async def test_rpm_waiters_are_served_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = RateLimit(rpm=60, burst=1 / 60, clock=clock)  # one request a second
    assert (await limiter.aacquire()).waited == 0.0
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()
        clock.advance(seconds)

    limiter._asleep = gated_sleep
    served: list[tuple[int, float]] = []

    async def take(i: int) -> None:
        served.append((i, (await limiter.aacquire()).waited))

    tasks = [asyncio.create_task(take(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert served == []
    gate.set()
    await asyncio.gather(*tasks)
    assert served == [(0, 1.0), (1, 2.0), (2, 3.0)]


async def test_cancelled_newcomer_leaves_the_line_uncharged() -> None:
    clock = FakeClock()
    limiter = RateLimit(rpm=60, burst=1 / 60, clock=clock)
    await limiter.aacquire()
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()
        clock.advance(seconds)

    limiter._asleep = gated_sleep
    head = asyncio.create_task(limiter.aacquire())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(limiter.aacquire())
    await asyncio.sleep(0.01)
    tat_before = dict(limiter.store._tat["rpm"])  # type: ignore[attr-defined]
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert limiter.store._tat["rpm"] == tat_before  # type: ignore[attr-defined]
    gate.set()
    assert (await head).waited == 1.0
    assert not limiter._lines.busy("default")
    clock.advance(1.0)
    assert finished_at_once(limiter.aacquire()).waited == 0.0
    assert limiter.store._tat["rpm"]["default"] == 3.0  # type: ignore[attr-defined]


def test_threads_and_loops_never_admit_more_than_the_burst() -> None:
    """The inlined path takes the store's lock: threads with their own loops, plus sync
    callers, sharing one limiter at a frozen time admit exactly the burst."""
    limiter = RateLimit(rpm=300, max_wait=0, clock=FakeClock())
    admitted: list[int] = []
    start = threading.Barrier(5)

    def count(take: Callable[[], Any]) -> int:
        n = 0
        for _ in range(150):
            try:
                take()
            except RateLimitedError:
                continue
            n += 1
        return n

    def async_worker() -> None:
        async def body() -> int:
            n = 0
            for _ in range(150):
                try:
                    await limiter.aacquire(key="k")
                except RateLimitedError:
                    continue
                n += 1
            return n

        start.wait()
        admitted.append(asyncio.run(body()))

    def sync_worker() -> None:
        start.wait()
        admitted.append(count(lambda: limiter.acquire(key="k")))

    threads = [threading.Thread(target=async_worker) for _ in range(4)]
    threads.append(threading.Thread(target=sync_worker))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 300
    assert limiter.store._tat["rpm"]["k"] == pytest.approx(60.0)  # type: ignore[attr-defined]


def test_lane_is_the_stores_state() -> None:
    store = InMemoryLimiterStore()
    lock, column, cooldowns = store.lane("rpm")
    assert store.lane("rpm") == (lock, column, cooldowns)
    assert store.lane("rpm")[1] is column
    one, other = RateLimit(rpm=60, store=store), RateLimit(rpm=600, store=store)
    assert one._lane is not None
    assert other._lane is not None
    assert one._lane[1] is other._lane[1] is column
    store.cooldown("k", 5.0)
    assert cooldowns == {"k": 5.0}
    assert RateLimit(rpm=60, tpm=100)._lane is None  # two demands: the store decides
    assert RateLimit(rpm=60, store=_ViaStore())._lane is None  # not the plain store
