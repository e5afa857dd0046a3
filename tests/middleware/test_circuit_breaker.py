from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentmw import CircuitOpenError, ControlFlowError
from agentmw.classify import FailureScenario
from agentmw.middleware import BreakerState, CircuitBreaker, Retry
from agentmw.stores import BreakerStore, InMemoryBreakerStore
from agentmw.testing import FakeClock, ScriptedModel, capture_events
from tests.errors import http
from tests.middleware.reliability import run_tool, run_turn
from tests.support import consume

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("recovery_timeout", 10.0)
    return CircuitBreaker("llm", clock=clock, **kwargs)


def invoke(mode: str, cb: CircuitBreaker, fn: Any) -> Any:
    """Call `fn` (which may raise) through the standalone breaker; returns result or exception."""
    try:
        if mode == "sync":
            return cb.call(fn)

        async def afn() -> Any:
            return fn()

        return asyncio.run(cb.acall(afn))
    except Exception as exc:
        return exc


def boom() -> None:
    raise TimeoutError


def ok() -> str:
    return "ok"


def test_opens_after_threshold_and_rejects_without_calling(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock)
    calls: list[int] = []

    def counted() -> None:
        calls.append(1)
        raise ConnectionResetError

    with capture_events() as events:
        for _ in range(3):
            assert isinstance(invoke(mode, cb, counted), ConnectionResetError)
        assert cb.state() is OPEN
        rejected = invoke(mode, cb, counted)
    assert isinstance(rejected, CircuitOpenError)
    assert isinstance(rejected, ControlFlowError)
    assert (rejected.name, rejected.key, rejected.retry_after) == ("llm", "llm", 10.0)
    assert len(calls) == 3
    assert events.names() == ["breaker.opened"]


def test_success_resets_the_consecutive_count(mode: str) -> None:
    cb = breaker(FakeClock())
    for fn in (boom, boom, ok, boom, boom):
        invoke(mode, cb, fn)
    assert cb.state() is CLOSED


def test_half_open_probe_success_closes(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock, half_open_max_calls=2)
    for _ in range(3):
        invoke(mode, cb, boom)
    clock.advance(9.9)
    assert isinstance(invoke(mode, cb, ok), CircuitOpenError)
    clock.advance(0.1)
    assert cb.state() is HALF
    with capture_events() as events:
        assert invoke(mode, cb, ok) == "ok"
        assert cb.state() is HALF
        assert invoke(mode, cb, ok) == "ok"
    assert cb.state() is CLOSED
    assert events.names() == ["breaker.half_open", "breaker.closed"]


def test_half_open_probe_failure_reopens_with_fresh_timeout(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(3):
        invoke(mode, cb, boom)
    clock.advance(10)
    assert isinstance(invoke(mode, cb, boom), TimeoutError)
    assert cb.state() is OPEN
    clock.advance(5)
    rejected = invoke(mode, cb, ok)
    assert isinstance(rejected, CircuitOpenError)
    assert rejected.retry_after == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (http(500), True),
        (http(503), True),
        (http(429), False),
        (http(400), False),
        (http(401), False),
        (http(404), False),
        (http(400, code="content_filter"), False),
        (ControlFlowError("budget"), False),
    ],
)
def test_what_counts(mode: str, error: Exception, counted: bool) -> None:
    cb = breaker(FakeClock(), failure_threshold=1)

    def fail() -> None:
        raise error

    invoke(mode, cb, fail)
    assert cb.state() is (OPEN if counted else CLOSED)


def test_counts_override(mode: str) -> None:
    cb = breaker(FakeClock(), failure_threshold=1, counts=[FailureScenario.RATE_LIMITED])

    def limited() -> None:
        raise http(429)

    invoke(mode, cb, boom)
    assert cb.state() is CLOSED
    invoke(mode, cb, limited)
    assert cb.state() is OPEN
    cb2 = breaker(FakeClock(), failure_threshold=1, counts=lambda f: f.status_code == 404)
    invoke(mode, cb2, lambda: (_ for _ in ()).throw(http(404)))
    assert cb2.state() is OPEN


def test_failure_ratio_over_window(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=100, failure_ratio=0.5, minimum_calls=4, window=10.0)
    for fn in (ok, boom, ok):
        invoke(mode, cb, fn)
        clock.advance(1)
    assert cb.state() is CLOSED  # only 3 calls: below minimum_calls
    invoke(mode, cb, boom)
    assert cb.state() is OPEN  # 2 of 4 failed
    cb.reset()
    for fn in (boom, ok, ok):
        invoke(mode, cb, fn)
    clock.advance(11)  # those fall out of the window
    for fn in (ok, ok, ok, boom):
        invoke(mode, cb, fn)
    assert cb.state() is CLOSED


def test_reset_closes(mode: str) -> None:
    cb = breaker(FakeClock(), failure_threshold=1)
    invoke(mode, cb, boom)
    assert cb.state() is OPEN
    cb.reset()
    assert cb.state() is CLOSED
    assert invoke(mode, cb, ok) == "ok"


def test_middleware_keys_per_model(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=2)
    for _ in range(2):
        run_turn(mode, [cb], ScriptedModel([http(503)]), model="m1")
    assert cb.state("m1") is OPEN
    assert cb.state("m2") is CLOSED
    result, _ = run_turn(mode, [cb], ScriptedModel(["fine"]), model="m2")
    assert result.text == "fine"
    model = ScriptedModel(["never"])
    result, session = run_turn(mode, [cb], model, model="m1")
    assert isinstance(result, CircuitOpenError)
    assert result.key == "m1"
    assert model.calls == []
    assert session.summary()["events"]["turn.failed"] == 1


def test_tools_are_keyed_by_tool_name(mode: str) -> None:
    cb = breaker(FakeClock(), failure_threshold=1)

    async def aboom() -> None:
        boom()

    result, _ = run_tool(mode, [cb], "search", boom, aboom)
    assert isinstance(result, TimeoutError)
    assert cb.state("search") is OPEN


def test_custom_key(mode: str) -> None:
    cb = breaker(FakeClock(), failure_threshold=1, key=lambda call: "provider")
    run_turn(mode, [cb], ScriptedModel([http(503)]), model="m1")
    assert cb.state("provider") is OPEN


def test_retry_does_not_retry_an_open_circuit(mode: str) -> None:
    clock = FakeClock()
    cb = breaker(clock, failure_threshold=2)
    retry = Retry(5, jitter="none", base=1.0, sleep=clock.sleep, asleep=clock.asleep)
    model = ScriptedModel([http(503), http(503), "never"])
    result, _ = run_turn(mode, [retry, cb], model, model="m")
    assert isinstance(result, CircuitOpenError)
    assert len(model.calls) == 2


def test_invalid_options_name_the_argument() -> None:
    for kwargs, word in [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"window": float("nan")}, "window"),
        ({"counts": ["nope"]}, "counts"),
    ]:
        with pytest.raises(ValueError, match=word):
            CircuitBreaker("b", **kwargs)  # type: ignore[arg-type]


def test_wrong_types_name_the_argument() -> None:
    for kwargs, message in [
        ({"half_open_max_calls": True}, "half_open_max_calls must be an int"),
        ({"recovery_timeout": "30"}, "recovery_timeout must be a number"),
        ({"key": "model"}, "key must be a callable call -> str"),
        ({"clock": 5}, "clock must be a callable returning seconds"),
        ({"store": object()}, r"store must be a BreakerStore \(missing aacquire, "),
    ]:
        with pytest.raises(TypeError, match=message):
            CircuitBreaker("b", **kwargs)  # type: ignore[arg-type]
    assert CircuitBreaker("b", recovery_timeout=float("inf")).config.recovery_timeout == math.inf


def test_in_memory_store_implements_the_protocol() -> None:
    assert isinstance(InMemoryBreakerStore(), BreakerStore)


def _open_then_half_open(clock: FakeClock, cb: CircuitBreaker) -> None:
    for _ in range(3):
        invoke("sync", cb, boom)
    clock.advance(10)


def test_half_open_admits_exactly_n_probes_threads() -> None:
    clock = FakeClock()
    cb = breaker(clock, half_open_max_calls=2)
    _open_then_half_open(clock, cb)
    gate = threading.Event()
    admitted: list[int] = []
    rejected: list[int] = []

    def probe() -> str:
        admitted.append(1)
        gate.wait(5)
        return "ok"

    def worker() -> None:
        try:
            cb.call(probe)
        except CircuitOpenError:
            rejected.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len(admitted) + len(rejected) < 8 and len(rejected) < 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    gate.set()
    for t in threads:
        t.join()
    assert (len(admitted), len(rejected)) == (2, 6)
    assert cb.state() is CLOSED


async def test_half_open_admits_exactly_n_probes_tasks() -> None:
    clock = FakeClock()
    cb = breaker(clock, half_open_max_calls=3)
    _open_then_half_open(clock, cb)
    gate = asyncio.Event()
    admitted: list[int] = []

    async def probe() -> str:
        admitted.append(1)
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(cb.acall(probe)) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert len(admitted) == 3
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 7
    assert cb.state() is CLOSED


async def test_cancelled_probe_releases_its_permit() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    _open_then_half_open(clock, cb)

    async def hang() -> None:
        await asyncio.sleep(10)

    async def fine() -> str:
        return "ok"

    task = asyncio.create_task(cb.acall(hang))
    await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpenError):
        await cb.acall(fine)  # the one permit is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cb.state() is HALF
    assert await cb.acall(fine) == "ok"
    assert cb.state() is CLOSED


def test_interrupted_sync_probe_releases_its_permit() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    _open_then_half_open(clock, cb)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cb.call(interrupted)
    assert cb.call(ok) == "ok"
    assert cb.state() is CLOSED


def test_stream_early_stop_counts_as_success_and_errors_count() -> None:
    from agentmw import agent_turn

    clock = FakeClock()
    cb = breaker(clock, failure_threshold=1)

    @agent_turn(stack=[cb], model="s")
    def talk() -> Any:
        yield "a"
        yield "b"

    gen = talk()
    assert next(gen) == "a"
    gen.close()
    assert cb.state("s") is CLOSED

    @agent_turn(stack=[cb], model="s")
    def broken() -> Any:
        yield "a"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        list(broken())
    assert cb.state("s") is OPEN


async def test_async_stream_counts_failures() -> None:
    from agentmw import agent_turn

    cb = breaker(FakeClock(), failure_threshold=1)

    @agent_turn(stack=[cb], model="s")
    async def broken() -> Any:
        yield "a"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        _ = [c async for c in broken()]
    assert cb.state("s") is OPEN


def test_lock_never_held_across_the_call() -> None:
    cb = CircuitBreaker("slow")

    def nap() -> str:
        time.sleep(0.1)
        return "ok"

    threads = [threading.Thread(target=cb.call, args=(nap,)) for _ in range(8)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - started < 0.3


async def test_lock_never_held_across_the_call_async() -> None:
    cb = CircuitBreaker("slow")

    async def nap() -> str:
        await asyncio.sleep(0.1)
        return "ok"

    started = time.perf_counter()
    results = await asyncio.gather(*(cb.acall(nap) for _ in range(8)))
    assert results == ["ok"] * 8
    assert time.perf_counter() - started < 0.3


class BreakerModel(RuleBasedStateMachine):
    """The breaker against a plain reference model of the issue's rules."""

    THRESHOLD, TIMEOUT, PROBES = 3, 5.0, 2

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.cb = CircuitBreaker(
            "model",
            failure_threshold=self.THRESHOLD,
            recovery_timeout=self.TIMEOUT,
            half_open_max_calls=self.PROBES,
            clock=self.clock,
        )
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probes = 0
        self.successes = 0

    def _expected(self) -> BreakerState:
        if self.state is OPEN and self.clock() - self.opened_at >= self.TIMEOUT:
            return HALF
        return self.state

    def _enter_half_open_if_due(self) -> None:
        if self._expected() is HALF and self.state is OPEN:
            self.state, self.probes, self.successes = HALF, 0, 0

    def _open(self) -> None:
        self.state, self.opened_at, self.failures = OPEN, self.clock(), 0

    @rule(outcome=st.sampled_from(["ok", "fail", "ignored"]))
    def call(self, outcome: str) -> None:
        self._enter_half_open_if_due()
        admitted = self.state is CLOSED or (self.state is HALF and self.probes < self.PROBES)

        def fn() -> str:
            if outcome == "fail":
                raise TimeoutError
            if outcome == "ignored":
                raise ValueError("bad request")
            return "ok"

        try:
            self.cb.call(fn)
            got = "ok"
        except CircuitOpenError:
            got = "rejected"
        except (TimeoutError, ValueError):
            got = "raised"
        assert got == ("rejected" if not admitted else ("ok" if outcome == "ok" else "raised"))
        if not admitted or outcome == "ignored":
            return
        if self.state is CLOSED:
            if outcome == "fail":
                self.failures += 1
                if self.failures >= self.THRESHOLD:
                    self._open()
            else:
                self.failures = 0
        else:
            self.probes += 1
            if outcome == "fail":
                self._open()
            else:
                self.successes += 1
                # A finished probe keeps its slot: one cycle admits PROBES probes in total.
                if self.successes >= self.PROBES:
                    self.state, self.failures = CLOSED, 0

    @rule(seconds=st.floats(min_value=0, max_value=8, allow_nan=False))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.state is not CLOSED)
    @rule()
    def reset(self) -> None:
        self.cb.reset()
        self.state, self.failures = CLOSED, 0

    @invariant()
    def same_state(self) -> None:
        assert self.cb.state() is self._expected()


BreakerModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_breaker_state_machine = BreakerModel.TestCase


# -- streams: "release" before the first chunk, success once delivered, the outcome on error ---
def _stream(path: str, cb: CircuitBreaker, chunks: list[str], error: BaseException | None) -> Any:
    from agentmw import agent_turn

    if path == "stream":

        def talk() -> Any:
            yield from chunks
            if error is not None:
                raise error

        return agent_turn(stack=[cb], model="s")(talk)

    async def atalk() -> Any:
        for chunk in chunks:
            yield chunk
        if error is not None:
            raise error

    return agent_turn(stack=[cb], model="s")(atalk)


def _half_open(clock: FakeClock, cb: CircuitBreaker) -> None:
    for _ in range(3):
        run_turn("sync", [cb], ScriptedModel([TimeoutError()]), model="s")
    clock.advance(10)
    assert cb.state("s") is HALF


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_stream_outcomes(path: str) -> None:
    clock = FakeClock()
    cb = breaker(clock)
    _half_open(clock, cb)
    # A control-flow error before the first chunk releases the probe's permit.
    with pytest.raises(ControlFlowError):
        await consume(path, _stream(path, cb, [], ControlFlowError("stop")))
    assert cb.state("s") is HALF
    # A consumer that stops early got what it asked for: the probe succeeded.
    assert await consume(path, _stream(path, cb, ["a", "b"], None), take=1) == ["a"]
    assert cb.state("s") is CLOSED
    # A counted failure after the first chunk still counts.
    cb1 = breaker(clock, failure_threshold=1)
    with pytest.raises(ConnectionResetError):
        await consume(path, _stream(path, cb1, ["a"], ConnectionResetError()))
    assert cb1.state("s") is OPEN
    # An empty stream that finished is a success.
    cb2 = breaker(clock, failure_threshold=1)
    assert await consume(path, _stream(path, cb2, [], None)) == []
    assert cb2.state("s") is CLOSED


async def test_cancelled_stream_probe_releases_its_permit() -> None:
    from agentmw import agent_turn

    clock = FakeClock()
    cb = breaker(clock)
    _half_open(clock, cb)
    started = asyncio.Event()

    @agent_turn(stack=[cb], model="s")
    async def hang() -> Any:
        started.set()
        await asyncio.sleep(10)
        yield "never"

    task = asyncio.create_task(consume("astream", hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cb.state("s") is HALF
    assert await consume("astream", _stream("astream", cb, ["ok"], None)) == ["ok"]
    assert cb.state("s") is CLOSED
