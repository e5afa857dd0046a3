"""Concurrency: the cap holds, FIFO waiting, slots come back on every ending, max_wait, renewals."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import aclosing

import pytest

from agentmw import Agent, Stack, agent_turn
from agentmw.errors import ConcurrencyLimitError
from agentmw.middleware import Concurrency, Retry
from agentmw.stores import ConcurrencyStore, InMemoryConcurrencyStore
from agentmw.testing import ScriptedModel, capture_events

from ._helpers import turn


def _wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


async def _await_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


class _Gauge:
    """Counts the calls inside at once and remembers the most."""

    def __init__(self) -> None:
        self.inside = self.peak = self.calls = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.calls += 1
            self.peak = max(self.peak, self.inside)

    def exit(self) -> None:
        with self._lock:
            self.inside -= 1


# -- the cap -----------------------------------------------------------------------------------
def test_many_threads_never_exceed_the_cap() -> None:
    cap, gauge = Concurrency(3), _Gauge()

    @agent_turn(stack=Stack([cap]), model="m")
    def work(i: int) -> int:
        gauge.enter()
        time.sleep(0.002)
        gauge.exit()
        return i

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert gauge.calls == 40
    assert gauge.peak == 3
    assert cap.in_flight("m") == 0
    assert not cap._lines.busy("m")


async def test_many_tasks_never_exceed_the_cap() -> None:
    cap, gauge = Concurrency(3), _Gauge()

    @agent_turn(stack=Stack([cap]), model="m")
    async def work(i: int) -> int:
        gauge.enter()
        await asyncio.sleep(0.002)
        gauge.exit()
        return i

    done = await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(40))), 10)
    assert done == list(range(40))
    assert gauge.peak == 3
    assert cap.in_flight("m") == 0


async def test_threads_and_tasks_share_one_cap() -> None:
    cap, gauge = Concurrency(2), _Gauge()

    @agent_turn(stack=Stack([cap]), model="m")
    def sync_work() -> None:
        gauge.enter()
        time.sleep(0.003)
        gauge.exit()

    @agent_turn(stack=Stack([cap]), model="m")
    async def async_work() -> None:
        gauge.enter()
        await asyncio.sleep(0.003)
        gauge.exit()

    threads = [threading.Thread(target=sync_work, daemon=True) for _ in range(10)]
    for t in threads:
        t.start()
    await asyncio.wait_for(asyncio.gather(*(async_work() for _ in range(10))), 10)
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert gauge.calls == 20
    assert gauge.peak == 2
    assert cap.in_flight("m") == 0


async def test_keys_are_capped_independently(mode: str) -> None:
    cap = Concurrency(1, max_wait=0)
    agent = Agent("a", stack=[cap])
    model = ScriptedModel(["ok"])
    with cap.slot("gpt-a"), agent.session() as s:
        other = await turn(mode, s, model, model="gpt-b")  # another key: no wait
        with pytest.raises(ConcurrencyLimitError):
            await turn(mode, s, model, model="gpt-a")
    assert other[0].text == "ok"
    assert len(model.calls) == 1


async def test_a_fixed_key_or_a_key_function(mode: str) -> None:
    shared = Concurrency(1, key="all", max_wait=0)
    by_user = Concurrency(1, key=lambda call: str(call.kwargs["user"]), max_wait=0)
    model = ScriptedModel(["ok"], repeat_last=True)
    with (
        shared.slot("all"),
        Agent("a", stack=[shared]).session() as s,
        pytest.raises(ConcurrencyLimitError),
    ):
        await turn(mode, s, model, model="m", user=1)
    with by_user.slot("1"), Agent("a", stack=[by_user]).session() as s:
        assert (await turn(mode, s, model, model="m", user=2))[0].text == "ok"
        with pytest.raises(ConcurrencyLimitError) as info:
            await turn(mode, s, model, model="m", user=1)
    assert info.value.key == "1"


# -- first come, first served ------------------------------------------------------------------
def test_threads_are_served_in_arrival_order() -> None:
    cap = Concurrency(1)
    order: list[int] = []
    cap_stack = Stack([cap])

    @agent_turn(stack=cap_stack, model="m")
    def work(i: int) -> None:
        order.append(i)

    threads: list[threading.Thread] = []
    with cap.slot("m"):
        for i in range(6):
            t = threading.Thread(target=work, args=(i,), daemon=True)
            t.start()
            threads.append(t)
            _wait_until(lambda: len(cap._lines.pending("m")) == len(threads))
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert order == list(range(6))


async def test_tasks_are_served_in_arrival_order() -> None:
    cap = Concurrency(1)
    order: list[int] = []

    @agent_turn(stack=Stack([cap]), model="m")
    async def work(i: int) -> None:
        order.append(i)
        await asyncio.sleep(0)

    tasks: list[asyncio.Task[None]] = []
    async with cap.aslot("m"):
        for i in range(6):
            tasks.append(asyncio.create_task(work(i)))
            await _await_until(lambda: len(cap._lines.pending("m")) == len(tasks))
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order == list(range(6))


# -- every ending gives the slot back ----------------------------------------------------------
async def test_a_failed_call_gives_its_slot_back(mode: str) -> None:
    cap = Concurrency(1, max_wait=0)
    agent = Agent("a", stack=[cap])
    model = ScriptedModel([ValueError("boom"), "ok"])
    with agent.session() as s:
        with pytest.raises(ValueError, match="boom"):
            await turn(mode, s, model, model="m")
        assert cap.in_flight("m") == 0
        assert (await turn(mode, s, model, model="m"))[0].text == "ok"
    assert cap.in_flight("m") == 0


async def test_a_cancelled_call_gives_its_slot_back() -> None:
    cap = Concurrency(1, max_wait=0)
    entered = asyncio.Event()

    @agent_turn(stack=Stack([cap]), model="m")
    async def slow() -> None:
        entered.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(slow())
    await entered.wait()
    assert cap.in_flight("m") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cap.in_flight("m") == 0


async def test_a_task_cancelled_while_waiting_leaves_the_line_cleanly() -> None:
    cap = Concurrency(1)
    served: list[str] = []

    @agent_turn(stack=Stack([cap]), model="m")
    async def work(name: str) -> None:
        served.append(name)

    async with cap.aslot("m"):
        first = asyncio.create_task(work("first"))
        await _await_until(lambda: len(cap._lines.pending("m")) == 1)
        second = asyncio.create_task(work("second"))
        await _await_until(lambda: len(cap._lines.pending("m")) == 2)
        first.cancel()  # the head of the line goes: the next one must still be served
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len(cap._lines.pending("m")) == 1
        assert cap.in_flight("m") == 1  # only the slot held here
    await asyncio.wait_for(second, 5)
    assert served == ["second"]
    assert cap.in_flight("m") == 0
    assert not cap._lines.busy("m")


def test_a_thread_interrupted_while_waiting_leaves_the_line() -> None:
    class Interrupt(BaseException):
        pass

    cap = Concurrency(1)
    real_wait = threading.Event.wait
    waited = threading.Event()

    def interrupted(self: threading.Event, timeout: float | None = None) -> bool:
        if threading.current_thread().name == "waiter":
            waited.set()
            raise Interrupt
        return real_wait(self, timeout)

    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            with cap.slot("k"):
                pass
        except Interrupt as exc:
            outcome.append(exc)

    with cap.slot("k"):
        threading.Event.wait = interrupted  # type: ignore[method-assign]
        try:
            t = threading.Thread(target=waiter, name="waiter", daemon=True)
            t.start()
            t.join(5)
        finally:
            threading.Event.wait = real_wait  # type: ignore[method-assign]
    assert waited.is_set()
    assert len(outcome) == 1
    assert not cap._lines.busy("k")
    assert cap.in_flight("k") == 0


def test_a_stream_holds_its_slot_until_it_ends_or_stops_early() -> None:
    cap = Concurrency(1, max_wait=0)
    seen: list[int] = []

    @agent_turn(stack=Stack([cap]), model="m")
    def talk() -> Generator[str, None, None]:
        for chunk in ("a", "b", "c"):
            seen.append(cap.in_flight("m"))
            yield chunk

    assert list(talk()) == ["a", "b", "c"]
    gen = talk()
    assert next(gen) == "a"
    gen.close()  # the consumer stops early
    assert seen == [1, 1, 1, 1]
    assert cap.in_flight("m") == 0


async def test_an_async_stream_holds_its_slot_until_it_ends_or_stops_early() -> None:
    cap = Concurrency(1, max_wait=0)
    seen: list[int] = []

    @agent_turn(stack=Stack([cap]), model="m")
    async def talk() -> AsyncGenerator[str, None]:
        for chunk in ("a", "b", "c"):
            seen.append(cap.in_flight("m"))
            yield chunk

    assert [c async for c in talk()] == ["a", "b", "c"]
    async with aclosing(talk()) as agen:
        assert await anext(agen) == "a"  # the consumer stops early
    assert seen == [1, 1, 1, 1]
    assert cap.in_flight("m") == 0


async def test_each_retried_attempt_takes_a_slot_again(mode: str) -> None:
    store = _CountingStore()
    cap = Concurrency(1, store=store, max_wait=1)  # a slot never given back fails, not hangs
    agent = Agent("a", stack=[Retry(attempts=3, base=0), cap])
    model = ScriptedModel([ConnectionError("x"), ConnectionError("y"), "ok"])
    with agent.session() as s:
        assert (await turn(mode, s, model, model="m"))[0].text == "ok"
    prefix = "a" if mode == "async" else ""
    assert store.used == [f"{prefix}acquire", f"{prefix}release"] * 3
    assert store.in_flight("m") == 0


# -- max_wait ----------------------------------------------------------------------------------
async def test_max_wait_refuses_with_an_error_and_an_event(mode: str) -> None:
    cap = Concurrency(2, max_wait=0.05)
    agent = Agent("a", stack=[cap])
    model = ScriptedModel(["ok"])
    with capture_events() as events, cap.slot("m"), cap.slot("m"), agent.session() as s:
        started = time.monotonic()
        with pytest.raises(ConcurrencyLimitError, match="cap of 2 for key 'm'") as info:
            await turn(mode, s, model, "secret prompt", model="m")
        took = time.monotonic() - started
    assert model.calls == []
    assert 0.05 <= took < 1.0
    error = info.value
    assert (error.key, error.limit, error.reason, error.retry_after) == ("m", 2, "max_wait", None)
    assert 0.05 <= error.waited < 1.0
    (refused,) = events.named("concurrency.refused")
    assert refused.data == {"key": "m", "limit": 2, "waited": error.waited, "reason": "max_wait"}
    assert "secret" not in repr(list(events))
    assert cap.in_flight("m") == 0
    assert not cap._lines.busy("m")


async def test_max_wait_zero_refuses_at_once(mode: str) -> None:
    cap = Concurrency(1, max_wait=0)
    agent = Agent("a", stack=[cap])
    with cap.slot("m"), agent.session() as s:
        started = time.monotonic()
        with pytest.raises(ConcurrencyLimitError) as info:
            await turn(mode, s, ScriptedModel(["ok"]), model="m")
    assert time.monotonic() - started < 0.05
    assert info.value.waited < 0.05


async def test_a_waiter_behind_another_is_refused_at_its_own_deadline() -> None:
    cap = Concurrency(1)
    served: list[str] = []

    async def patient() -> None:
        async with cap.aslot("m"):
            served.append("patient")

    async with cap.aslot("m"):
        head = asyncio.create_task(patient())
        await _await_until(lambda: len(cap._lines.pending("m")) == 1)
        cap.max_wait = 0.05  # read when a wait starts: only the next caller is impatient
        with pytest.raises(ConcurrencyLimitError):
            async with cap.aslot("m"):
                served.append("impatient")
        assert len(cap._lines.pending("m")) == 1  # the head still waits
    await asyncio.wait_for(head, 5)
    assert served == ["patient"]
    assert cap.in_flight("m") == 0


async def test_a_wait_is_reported_with_its_seconds(mode: str) -> None:
    cap = Concurrency(1)
    release = threading.Event()

    def hold() -> None:
        with cap.slot("m"):
            release.wait(5)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    _wait_until(lambda: cap.in_flight("m") == 1)
    threading.Timer(0.05, release.set).start()
    with capture_events() as events, Agent("a", stack=[cap]).session() as s:
        assert (await turn(mode, s, ScriptedModel(["ok"]), model="m"))[0].text == "ok"
    holder.join(5)
    (waited,) = events.named("concurrency.waited")
    assert waited.data["key"] == "m"
    assert 0.04 <= waited.data["seconds"] < 1.0


# -- outside a session -------------------------------------------------------------------------
async def test_standalone_outside_a_session(mode: str) -> None:
    cap = Concurrency(1, max_wait=0)

    @agent_turn(stack=Stack([cap]), model="m")
    def sync_call() -> str:
        return "ok"

    @agent_turn(stack=Stack([cap]), model="m")
    async def async_call() -> str:
        return "ok"

    async def call() -> str:
        return sync_call() if mode == "sync" else await async_call()

    with capture_events() as events:
        assert await call() == "ok"
        if mode == "sync":
            with cap.slot("m"), pytest.raises(ConcurrencyLimitError):
                sync_call()
        else:
            async with cap.aslot("m"):
                with pytest.raises(ConcurrencyLimitError):
                    await async_call()
        assert await call() == "ok"
    (refused,) = events.named("concurrency.refused")
    assert refused.session_id is None
    assert refused.data["key"] == "m"
    assert cap.in_flight("m") == 0


# -- stores: the async path awaits only `a*` twins; leases are renewed while a call runs --------
class _CountingStore:
    """An in-memory store that records which methods were used (renewals every `every` s)."""

    def __init__(self, every: float | None = None, *, blocking: bool = True) -> None:
        self.inner = InMemoryConcurrencyStore()
        self.every = every
        self.blocking = blocking
        self.used: list[str] = []
        self.kept = True

    def renewal_interval(self) -> float | None:
        return self.every

    def _sync(self, name: str) -> None:
        if not self.blocking:
            raise AssertionError(f"a blocking store method ({name}) was called on the async path")
        self.used.append(name)

    def acquire(self, key: str, limit: int, lease: str) -> float:
        self._sync("acquire")
        return self.inner.acquire(key, limit, lease)

    def release(self, key: str, lease: str) -> None:
        self._sync("release")
        self.inner.release(key, lease)

    def renew(self, key: str, lease: str) -> bool:
        self._sync("renew")
        return self.kept

    def in_flight(self, key: str) -> int:
        return self.inner.in_flight(key)

    async def aacquire(self, key: str, limit: int, lease: str) -> float:
        self.used.append("aacquire")
        return self.inner.acquire(key, limit, lease)

    async def arelease(self, key: str, lease: str) -> None:
        self.used.append("arelease")
        self.inner.release(key, lease)

    async def arenew(self, key: str, lease: str) -> bool:
        self.used.append("arenew")
        return self.kept

    async def ain_flight(self, key: str) -> int:
        return self.inner.in_flight(key)


def test_a_store_must_implement_the_protocol() -> None:
    assert isinstance(_CountingStore(), ConcurrencyStore)
    assert isinstance(InMemoryConcurrencyStore(), ConcurrencyStore)
    with pytest.raises(TypeError, match=r"store must be a ConcurrencyStore \(missing aacquire"):
        Concurrency(1, store=object())  # type: ignore[arg-type]


async def test_the_async_path_awaits_only_async_store_methods() -> None:
    store = _CountingStore(every=0.01, blocking=False)
    cap = Concurrency(1, store=store)

    @agent_turn(stack=Stack([cap]), model="m")
    async def slow() -> str:
        await asyncio.sleep(0.06)
        return "ok"

    @agent_turn(stack=Stack([cap]), model="m")
    async def talk() -> AsyncIterator[str]:
        yield "a"

    assert list(await asyncio.wait_for(asyncio.gather(slow(), slow()), 10)) == [
        "ok",
        "ok",
    ]  # the second one waits
    assert [c async for c in talk()] == ["a"]
    assert store.used.count("aacquire") >= 3
    assert store.used.count("arelease") == 3
    assert store.used.count("arenew") >= 6  # renewed while each slow call ran
    await asyncio.sleep(0.05)
    renewals = store.used.count("arenew")
    await asyncio.sleep(0.05)
    assert store.used.count("arenew") == renewals  # renewing stops with the call


def test_the_sync_path_renews_in_a_background_thread() -> None:
    store = _CountingStore(every=0.01)
    cap = Concurrency(1, store=store)

    @agent_turn(stack=Stack([cap]), model="m")
    def slow() -> str:
        time.sleep(0.06)
        return "ok"

    assert slow() == "ok"
    assert store.used[0] == "acquire"
    assert store.used[-1] == "release"
    assert store.used.count("renew") >= 3
    time.sleep(0.05)
    assert store.used[-1] == "release"  # no renewal after the release
    assert store.in_flight("m") == 0


async def test_a_lost_lease_is_reported_once(mode: str) -> None:
    store = _CountingStore(every=0.01)
    store.kept = False  # the store says the lease expired
    cap = Concurrency(1, store=store)
    agent = Agent("a", stack=[cap])

    def slow() -> str:
        time.sleep(0.06)
        return "ok"

    async def aslow() -> str:
        await asyncio.sleep(0.06)
        return "ok"

    with capture_events() as events, agent.session() as s:
        if mode == "sync":
            assert s.run_turn(slow, model="m")[0] == "ok"
        else:
            assert (await s.arun_turn(aslow, model="m"))[0] == "ok"
    (lost,) = events.named("concurrency.lease_lost")
    assert lost.data == {"key": "m"}
    assert store.in_flight("m") == 0


# -- options -----------------------------------------------------------------------------------
def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be an int >= 1"):
        Concurrency(0)
    with pytest.raises(TypeError, match=r"max_in_flight must be an int, got float 2\.5"):
        Concurrency(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_wait must be a number >= 0"):
        Concurrency(1, max_wait=-1)
    with pytest.raises(TypeError, match="key must be a string, a callable call -> str, or None"):
        Concurrency(1, key=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be a non-blank string"):
        Concurrency(1, key=" ")
    assert Concurrency(1).kinds == frozenset({"turn"})
    assert Concurrency(1, kinds=["turn", "tool"], name="cap").name == "cap"
