"""Sessions follow the work: `bind`, `executor`, `agather` and `configure(outside_session=)`."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

import agentmw
from agentmw import (
    Agent,
    BudgetExceededError,
    ControlFlowError,
    MaxIterationsExceededError,
    ModelPricing,
    Usage,
    agent_tool,
    agent_turn,
    current_session,
    register_pricing,
)
from agentmw.core.context import OPEN_SESSIONS
from agentmw.errors import NoSessionError, OutsideSessionWarning
from agentmw.middleware import Budget, Limits

MODEL = "i14a-threads-model"
register_pricing(MODEL, ModelPricing(input_per_million=1, output_per_million=2))
TURN_USD = Decimal("0.002")  # Usage(1000, 500) at $1 / $2 per million tokens


def _turn() -> Callable[[], int]:
    @agent_turn(model=MODEL, usage=lambda r: Usage(1000, 500))
    def turn() -> int:
        return 1

    return turn


def _aturn() -> Callable[[], Any]:
    @agent_turn(model=MODEL, usage=lambda r: Usage(1000, 500))
    async def aturn() -> int:
        await asyncio.sleep(0)
        return 1

    return aturn


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a plain thread (which starts without the current session)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def _ran(fn: Callable[[], Any]) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [w for w in caught if issubclass(w.category, OutsideSessionWarning)]


# -- outside_session -------------------------------------------------------------------------
def test_a_plain_thread_warns_once_per_function_and_counts_nowhere() -> None:
    turn, other = _turn(), _turn()
    with Agent("a").session() as session:
        _, first = _ran(lambda: _in_thread(lambda: [turn(), turn(), turn()]))
        _, second = _ran(lambda: _in_thread(turn))
        _, third = _ran(lambda: _in_thread(other))
    assert session.iterations == 0
    assert session.cost_usd == 0
    assert len(first) == 1
    assert second == []
    assert len(third) == 1  # ...and each function once
    warning = first[0].message
    assert isinstance(warning, OutsideSessionWarning)
    assert isinstance(warning, RuntimeWarning)
    assert warning.function == "turn"
    text = str(warning)
    assert text.startswith("'turn' ran outside any session while a session is open")
    assert "session.bind(fn)" in text
    assert "session.executor()" in text
    assert "configure(outside_session='allow')" in text


async def test_run_in_executor_without_bind_warns_and_with_bind_counts() -> None:
    turn = _turn()
    loop = asyncio.get_running_loop()
    async with Agent("a").session() as session:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await loop.run_in_executor(None, turn)
            await loop.run_in_executor(None, turn)
            assert session.iterations == 0
            await loop.run_in_executor(None, session.bind(turn))
            await asyncio.to_thread(turn)  # to_thread copies the context: already in the session
    outside = [w for w in caught if issubclass(w.category, OutsideSessionWarning)]
    assert len(outside) == 1
    assert getattr(outside[0].message, "function", None) == "turn"
    assert session.iterations == 2
    assert session.cost_usd == 2 * TURN_USD


def test_error_mode_raises_no_session_error(mode: str) -> None:
    agentmw.configure(outside_session="error")
    tool = agent_tool(lambda: 1) if mode == "sync" else None

    @agent_tool(name="fetch")
    async def afetch() -> int:
        return 1

    def call() -> Any:
        if mode == "sync":
            assert tool is not None
            return tool()
        return asyncio.run(afetch())

    with Agent("a").session() as session:
        with pytest.raises(NoSessionError) as info:
            _in_thread_raising(lambda: _catch(call))
        assert session.tool_calls == 0
    error = info.value
    assert isinstance(error, ControlFlowError)
    assert error.function == ("<lambda>" if mode == "sync" else "fetch")
    assert f"{error.function!r} ran outside any session while a session is open" in str(error)


def _catch(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except NoSessionError as exc:  # re-raised in the main thread by the caller
        return exc


def _in_thread_raising(fn: Callable[[], Any]) -> Any:
    result = _in_thread(fn)
    if isinstance(result, BaseException):
        raise result
    return result


def test_allow_mode_and_no_open_session_run_as_before(mode: str) -> None:
    turn = _turn() if mode == "sync" else _aturn()

    def call() -> Any:
        return turn() if mode == "sync" else asyncio.run(turn())  # type: ignore[arg-type]

    OPEN_SESSIONS[0] = 0  # no session is open in this process
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert call() == 1  # no session anywhere: no warning, as today
        agentmw.configure(outside_session="allow")
        with Agent("a").session() as session:
            assert _in_thread(call) == 1
        assert session.iterations == 0


def test_closing_the_last_session_stops_the_warnings() -> None:
    OPEN_SESSIONS[0] = 0
    turn = _turn()
    with Agent("a").session():
        assert OPEN_SESSIONS[0] == 1
        with Agent("b").session():
            assert OPEN_SESSIONS[0] == 2
    assert OPEN_SESSIONS[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert turn() == 1


def test_configure_outside_session_checks_its_argument() -> None:
    with pytest.raises(ValueError, match=r"outside_session must be one of warn, error, allow"):
        agentmw.configure(outside_session="raise")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"outside_session must be one of .*got bool"):
        agentmw.configure(outside_session=True)  # type: ignore[arg-type]


# -- bind ------------------------------------------------------------------------------------
def test_bind_makes_a_plain_thread_count(mode: str) -> None:
    turn, aturn = _turn(), _aturn()
    with Agent("a").session() as session:
        if mode == "sync":
            bound = session.bind(lambda: (current_session(), turn()))
            seen, value = _in_thread(bound)
        else:

            async def work() -> tuple[Any, int]:
                return current_session(), await aturn()

            bound_async = session.bind(work)
            assert asyncio.iscoroutinefunction(bound_async)
            seen, value = _in_thread(lambda: asyncio.run(bound_async()))
        assert current_session() is session
    assert seen is session
    assert value == 1
    assert session.iterations == 1
    assert session.cost_usd == TURN_USD


def test_bind_restores_the_callers_context() -> None:
    with Agent("a").session() as session:
        bound = session.bind(lambda: current_session())
    with Agent("b").session() as other:
        assert bound() is session
        assert current_session() is other


def test_bind_refuses_what_it_cannot_carry() -> None:
    session = Agent("a").session()

    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match=r"fn must be a function or a coroutine function, not a"):
        session.bind(gen)
    with pytest.raises(TypeError, match=r"fn must be a function or a coroutine function, got int"):
        session.bind(3)  # type: ignore[arg-type]


# -- executor: 16 threads x 2,000 turns ------------------------------------------------------
THREADS, PER_THREAD = 16, 2000


def test_executor_counts_every_turn_exactly() -> None:
    turn = _turn()
    agent = Agent("a", stack=[Budget(1000, enforce=True), Limits(max_turns=THREADS * PER_THREAD)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideSessionWarning)
        with agent.session() as session, session.executor(THREADS) as pool:
            futures = [
                pool.submit(lambda: sum(turn() for _ in range(PER_THREAD))) for _ in range(THREADS)
            ]
            assert sum(f.result() for f in futures) == THREADS * PER_THREAD
    total = THREADS * PER_THREAD
    assert session.iterations == total
    assert session.usage == Usage(1000 * total, 500 * total)
    assert session.cost_usd == TURN_USD * total
    assert session.summary()["events"]["turn.completed"] == total


def _refusals(fn: Callable[[], Any], tries: int) -> tuple[int, list[type[BaseException]]]:
    done, refused = 0, list[type[BaseException]]()
    for _ in range(tries):
        try:
            fn()
            done += 1
        except ControlFlowError as exc:
            refused.append(type(exc))
    return done, refused


def test_executor_threads_stop_exactly_at_max_turns() -> None:
    turn = _turn()
    limit = 20_000
    agent = Agent("a", stack=[Budget(1000, enforce=True), Limits(max_turns=limit)])
    with agent.session() as session, session.executor(THREADS) as pool:
        futures = [pool.submit(_refusals, turn, PER_THREAD) for _ in range(THREADS)]
        results = [f.result() for f in futures]
    assert sum(done for done, _ in results) == limit
    refused = [t for _, kinds in results for t in kinds]
    assert len(refused) == THREADS * PER_THREAD - limit
    assert set(refused) == {MaxIterationsExceededError}
    assert session.iterations == limit
    assert session.cost_usd == TURN_USD * limit


def test_executor_threads_stop_at_an_enforced_budget() -> None:
    turn = _turn()
    usd = Decimal("0.5")  # 250 turns
    agent = Agent(
        "a", stack=[Budget(usd, enforce=True, estimate=lambda c: TURN_USD), Limits(max_turns=10**6)]
    )
    with agent.session() as session, session.executor(THREADS) as pool:
        futures = [pool.submit(_refusals, turn, PER_THREAD) for _ in range(THREADS)]
        results = [f.result() for f in futures]
    done = sum(d for d, _ in results)
    refused = [t for _, kinds in results for t in kinds]
    assert done + len(refused) == THREADS * PER_THREAD
    assert set(refused) == {BudgetExceededError}
    assert session.iterations == done
    assert session.cost_usd == TURN_USD * done
    # Every turn was counted, and the hard cap held exactly: each turn reserved its worst case
    # (the estimate, equal to its real cost) before it ran, so no 251st turn passed.
    assert done == 250
    assert session.cost_usd == usd


async def test_async_session_executor_and_agather_count_every_turn() -> None:
    turn, aturn = _turn(), _aturn()
    loop = asyncio.get_running_loop()
    total = THREADS * PER_THREAD
    agent = Agent("a", stack=[Budget(1000, enforce=True), Limits(max_turns=2 * total)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideSessionWarning)
        async with agent.session() as session:
            pool = session.executor(THREADS)
            sums = await asyncio.gather(
                *(
                    loop.run_in_executor(pool, lambda: sum(turn() for _ in range(PER_THREAD)))
                    for _ in range(THREADS)
                )
            )

            async def many() -> int:
                return sum([await aturn() for _ in range(PER_THREAD)])

            gathered = await session.agather(*(many() for _ in range(THREADS)))
    assert sum(sums) == total
    assert gathered == [PER_THREAD] * THREADS
    assert session.iterations == 2 * total
    assert session.cost_usd == TURN_USD * 2 * total


async def test_agather_stops_exactly_at_max_turns() -> None:
    aturn = _aturn()
    agent = Agent("a", stack=[Limits(max_turns=100)])

    async def attempts() -> tuple[int, list[type[BaseException]]]:
        done, refused = 0, list[type[BaseException]]()
        for _ in range(50):
            try:
                await aturn()
                done += 1
            except ControlFlowError as exc:
                refused.append(type(exc))
        return done, refused

    async with agent.session() as session:
        results = await session.agather(*(attempts() for _ in range(4)))
    assert sum(d for d, _ in results) == 100 == session.iterations
    assert [t for _, ts in results for t in ts] == [MaxIterationsExceededError] * 100


# -- executor lifetime -----------------------------------------------------------------------
def test_leaving_the_session_waits_for_its_executors_tasks() -> None:
    turn = _turn()
    gate = threading.Event()
    with Agent("a").session() as session:
        pool = session.executor(2)
        futures = [pool.submit(lambda: (gate.wait(5), turn())[1]) for _ in range(4)]
        threading.Timer(0.05, gate.set).start()
    assert [f.result(timeout=0) for f in futures] == [1, 1, 1, 1]
    assert session.iterations == 4
    assert session.state.value == "completed"
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(turn)


def test_a_failing_session_cancels_the_tasks_not_started() -> None:
    turn = _turn()
    gate = threading.Event()
    session = Agent("a").session()
    futures: list[Any] = []

    def failing_block() -> None:
        with session:
            pool = session.executor(1)
            futures.append(pool.submit(lambda: (gate.wait(5), turn())[1]))
            futures.extend(pool.submit(turn) for _ in range(3))
            threading.Timer(0.05, gate.set).start()
            raise KeyError("boom")

    with pytest.raises(KeyError):
        failing_block()
    running, *queued = futures
    assert running.result(timeout=0) == 1
    assert all(f.cancelled() for f in queued)
    assert session.iterations == 1
    assert session.state.value == "failed"


async def test_async_exit_waits_for_executor_tasks_off_the_loop() -> None:
    turn = _turn()
    gate = threading.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not gate.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    async with Agent("a").session() as session:
        pool = session.executor(2)
        futures = [pool.submit(lambda: (gate.wait(5), turn())[1]) for _ in range(2)]
        tick = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(0.1, gate.set)
    await tick
    assert ticks > 3  # the loop kept running while the exit waited
    assert [f.result(timeout=0) for f in futures] == [1, 1]
    assert session.iterations == 2


def test_executor_checks_max_workers() -> None:
    session = Agent("a").session()
    with pytest.raises(ValueError, match=r"max_workers must be an int >= 1, got 0"):
        session.executor(0)
    with pytest.raises(TypeError, match=r"max_workers must be an int"):
        session.executor("4")  # type: ignore[arg-type]
    assert isinstance(session.executor(), ThreadPoolExecutor)


# -- agather ---------------------------------------------------------------------------------
async def test_agather_runs_in_the_session_even_from_outside_it() -> None:
    aturn = _aturn()

    async def seen() -> Any:
        await asyncio.sleep(0)
        return current_session()

    async with Agent("a").session() as session:
        results = await session.agather(seen(), seen(), aturn())
        # From a task that has no session (an empty context), the tasks still run in it.
        outside = asyncio.get_running_loop().create_task(
            session.agather(seen(), aturn()), context=contextvars.Context()
        )
        assert await outside == [session, 1]
    assert results == [session, session, 1]
    assert session.iterations == 2


async def test_agather_has_a_group_deadline() -> None:
    cancelled = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def quick() -> int:
        return 7

    async with Agent("a").session() as session:
        assert await session.agather(quick(), timeout=1) == [7]
        with pytest.raises(TimeoutError):
            await session.agather(slow(1), slow(2), quick(), timeout=0.05)
    assert sorted(cancelled) == [1, 2]


async def test_agather_failure_cancels_the_others_as_an_exception_group() -> None:
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    async def boom() -> None:
        raise KeyError("x")

    async with Agent("a").session() as session:
        with pytest.raises(ExceptionGroup) as info:
            await session.agather(slow(), boom())
    assert info.group_contains(KeyError)
    assert cancelled == [1]


async def test_agather_checks_its_arguments() -> None:
    async def one() -> int:
        return 1

    session = Agent("a").session()
    with pytest.raises(TypeError, match=r"awaitables\[1\] must be awaitable, got int"):
        await session.agather(one(), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"timeout must be a number >= 0, got -1"):
        await session.agather(one(), timeout=-1)
