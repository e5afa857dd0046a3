"""Budget as a hard cap: reservations under threads and tasks, release, fail-closed pricing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from agentmw import (
    Agent,
    BudgetExceededError,
    ControlFlowError,
    ModelPricing,
    Stack,
    Usage,
    agent_turn,
)
from agentmw.errors import PricingMissingError
from agentmw.middleware import Budget, Fallback, Policy
from agentmw.policy import PolicyEngine, Rule, fact, switch_model
from agentmw.pricing import PricingTable
from agentmw.pricing.table import _reset_warnings
from agentmw.stores import InMemoryLedger
from agentmw.testing import Chunk, capture_events

# $1 per million input tokens, $2 per million output tokens.
TABLE = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=2)})
PROMPT = "x" * 400  # estimated at 100 input tokens
MAX = 1000
WORST = Decimal("0.0021")  # 100 in at $1/M + 1,000 out at $2/M
USD = Decimal("0.1")
CALLS = int(USD // WORST)  # 47 calls fit: 47 x 0.0021 = 0.0987
WORKERS = 16


def slow(prompt: str, *, max_tokens: int) -> Usage:
    time.sleep(0.0005)  # long enough for the threads to overlap
    return Usage(100, max_tokens)  # each call costs exactly its worst case


async def aslow(prompt: str, *, max_tokens: int) -> Usage:
    await asyncio.sleep(0)
    return Usage(100, max_tokens)


async def turn(mode: str, session: Any, fake: Any, *args: Any, **kw: Any) -> Any:
    """One turn on `fake` (a callable with an `acall` twin), the sync or the async way."""
    if mode == "sync":
        return session.run_turn(fake, *args, **kw)
    return await session.arun_turn(fake.acall, *args, **kw)


def _agent(budget: Budget, table: PricingTable = TABLE) -> Agent:
    return Agent("cap", stack=[budget], pricing=table)


def _ledgered() -> tuple[Agent, InMemoryLedger]:
    ledger = InMemoryLedger()
    return _agent(Budget(USD, enforce=True, ledger=ledger)), ledger


# -- the cap holds under concurrency ------------------------------------------------------------
def test_sixteen_threads_on_a_shared_ledger_stop_exactly_at_the_cap() -> None:
    agent, ledger = _ledgered()
    ran: list[int] = []
    refused: list[BudgetExceededError] = []
    start = threading.Barrier(WORKERS)

    def worker() -> None:
        start.wait()
        with agent.session() as s:
            while True:
                try:
                    s.run_turn(slow, PROMPT, model="m", max_tokens=MAX)
                except BudgetExceededError as exc:
                    refused.append(exc)
                    return
                ran.append(1)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ran) == CALLS == 47
    assert ledger.spent("Budget") == CALLS * WORST == Decimal("0.0987")
    assert ledger.spent("Budget") <= USD
    assert ledger.reserved("Budget") == 0
    assert len(refused) == WORKERS
    assert all(e.estimate_usd == WORST for e in refused)


async def test_sixteen_tasks_on_a_shared_ledger_stop_exactly_at_the_cap() -> None:
    agent, ledger = _ledgered()
    ran: list[int] = []

    async def worker() -> None:
        async with agent.session() as s:
            while True:
                try:
                    await s.arun_turn(aslow, PROMPT, model="m", max_tokens=MAX)
                except BudgetExceededError:
                    return
                ran.append(1)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    assert len(ran) == CALLS
    assert ledger.spent("Budget") == Decimal("0.0987")
    assert ledger.reserved("Budget") == 0


async def test_threads_in_one_session_stop_exactly_at_the_cap(mode: str) -> None:
    # No shared ledger: the session's own book holds the reservations.
    agent = _agent(Budget(USD, enforce=True))
    with agent.session() as s:
        if mode == "sync":

            def worker() -> None:
                while True:
                    try:
                        s.run_turn(slow, PROMPT, model="m", max_tokens=MAX)
                    except BudgetExceededError:
                        return

            threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:

            async def aworker() -> None:
                while True:
                    try:
                        await s.arun_turn(aslow, PROMPT, model="m", max_tokens=MAX)
                    except BudgetExceededError:
                        return

            await asyncio.gather(*(aworker() for _ in range(WORKERS)))
        assert s.iterations == CALLS
        assert s.cost_usd == Decimal("0.0987")


# -- what is reserved ------------------------------------------------------------------------------
def _held_call(mode: str, agent: Agent, **kw: Any) -> tuple[Any, threading.Event, Any]:
    """Start one call that blocks until released; returns (waiter, release, session)."""
    gate = threading.Event()
    entered = threading.Event()

    def blocking(prompt: str, **_: Any) -> Usage:
        entered.set()
        gate.wait(5)
        return Usage(100, 0)

    session = agent.session().__enter__()
    thread = threading.Thread(target=lambda: session.run_turn(blocking, PROMPT, model="m", **kw))
    thread.start()
    entered.wait(5)
    return thread, gate, session


@pytest.mark.parametrize("kwarg", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
async def test_refusal_carries_spent_reserved_and_estimate(mode: str, kwarg: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget("0.004", enforce=True, ledger=ledger))
    thread, gate, session = _held_call(mode, agent, **{kwarg: MAX})
    try:
        assert ledger.reserved("Budget") == WORST
        with capture_events() as events, pytest.raises(BudgetExceededError) as info:
            await turn(mode, session, _Scripted(), PROMPT, model="m", **{kwarg: MAX})
    finally:
        gate.set()
        thread.join()
        session.__exit__(None, None, None)
    error = info.value
    assert (error.budget_usd, error.spent_usd) == (Decimal("0.004"), Decimal(0))
    assert (error.reserved_usd, error.estimate_usd) == (WORST, WORST)
    assert isinstance(error, ControlFlowError)
    assert str(error) == (
        "a call estimated at $0.0021 would overspend the budget of $0.004"
        " ($0 spent so far, $0.0021 reserved by calls in flight)"
    )
    refused = events.named("budget.refused")[0].data
    assert refused == {
        "reason": "precheck",
        "spent_usd": "0",
        "reserved_usd": "0.0021",
        "estimate_usd": "0.0021",
    }
    # The held call settled to its real cost (100 input tokens): the hold is gone.
    assert ledger.spent("Budget") == Decimal("0.0001")
    assert ledger.reserved("Budget") == 0


class _Scripted:
    """A model that must never be called (the refused call never reaches it)."""

    calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Usage:
        raise AssertionError("the refused call reached the model")

    async def acall(self, *args: Any, **kwargs: Any) -> Usage:
        raise AssertionError("the refused call reached the model")


async def test_max_call_usd_is_the_worst_case_without_a_maximum(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget(1, enforce=True, ledger=ledger, max_call_usd="0.6"))
    thread, gate, session = _held_call(mode, agent)
    try:
        assert ledger.reserved("Budget") == Decimal("0.6")
        with pytest.raises(BudgetExceededError) as info:
            await turn(mode, session, _Scripted(), PROMPT, model="m")
    finally:
        gate.set()
        thread.join()
        session.__exit__(None, None, None)
    assert (info.value.reserved_usd, info.value.estimate_usd) == (Decimal("0.6"), Decimal("0.6"))
    assert ledger.reserved("Budget") == 0


async def test_without_a_maximum_only_the_input_estimate_is_reserved(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget("0.00015", enforce=True, ledger=ledger))
    thread, gate, session = _held_call(mode, agent)
    try:
        assert ledger.reserved("Budget") == Decimal("0.0001")  # 100 input tokens, no output
        with pytest.raises(BudgetExceededError) as info:
            await turn(mode, session, _Scripted(), PROMPT, model="m")
    finally:
        gate.set()
        thread.join()
        session.__exit__(None, None, None)
    assert info.value.estimate_usd == Decimal("0.0001")


# -- holds are released when a call does not finish ----------------------------------------------
class _Boom(Exception):
    pass


async def test_a_failed_call_releases_its_hold(mode: str) -> None:
    agent, ledger = _ledgered()

    def fail(prompt: str, **_: Any) -> Usage:
        assert ledger.reserved("Budget") == WORST
        raise _Boom

    async def afail(prompt: str, **_: Any) -> Usage:
        return fail(prompt)

    with agent.session() as s:
        for _ in range(3):
            with pytest.raises(_Boom):
                await turn(mode, s, _Failing(fail, afail), PROMPT, model="m", max_tokens=MAX)
        assert (ledger.spent("Budget"), ledger.reserved("Budget")) == (Decimal(0), Decimal(0))
        await turn(mode, s, _Priced(), PROMPT, model="m", max_tokens=MAX)
    assert ledger.spent("Budget") == WORST


class _Failing:
    def __init__(self, fn: Any, afn: Any) -> None:
        self.fn, self.acall = fn, afn

    def __call__(self, *args: Any, **kwargs: Any) -> Usage:
        result: Usage = self.fn(*args, **kwargs)
        return result


class _Priced:
    def __call__(self, *args: Any, **kwargs: Any) -> Usage:
        return Usage(100, MAX)

    async def acall(self, *args: Any, **kwargs: Any) -> Usage:
        return Usage(100, MAX)


async def test_a_cancelled_task_releases_its_hold() -> None:
    agent, ledger = _ledgered()
    entered = asyncio.Event()

    async def hang(prompt: str, **_: Any) -> Usage:
        entered.set()
        await asyncio.sleep(60)
        return Usage(100, MAX)

    async with agent.session() as s:
        task = asyncio.create_task(s.arun_turn(hang, PROMPT, model="m", max_tokens=MAX))
        await entered.wait()
        assert ledger.reserved("Budget") == WORST
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (ledger.spent("Budget"), ledger.reserved("Budget")) == (Decimal(0), Decimal(0))


def test_an_interrupted_sync_call_releases_its_hold() -> None:
    agent, ledger = _ledgered()

    def interrupted(prompt: str, **_: Any) -> Usage:
        raise KeyboardInterrupt

    with agent.session() as s, pytest.raises(KeyboardInterrupt):
        s.run_turn(interrupted, PROMPT, model="m", max_tokens=MAX)
    assert ledger.reserved("Budget") == 0


@agent_turn(model="m")
def _stream(prompt: str, *, max_tokens: int, fail: bool = False) -> Iterator[Chunk]:
    yield Chunk("a" * 40)
    if fail:
        raise _Boom
    yield Chunk("b" * 40, usage=Usage(100, 20))


@agent_turn(model="m")
async def _astream(prompt: str, *, max_tokens: int, fail: bool = False) -> AsyncIterator[Chunk]:
    yield Chunk("a" * 40)
    if fail:
        raise _Boom
    yield Chunk("b" * 40, usage=Usage(100, 20))


async def test_streams_settle_when_closed_and_release_when_they_fail(mode: str) -> None:
    agent, ledger = _ledgered()
    with agent.session():
        if mode == "sync":
            stream = _stream(PROMPT, max_tokens=MAX)
            next(stream)
            assert ledger.reserved("Budget") == WORST
            stream.close()  # type: ignore[attr-defined]  # the consumer stops early: what it read is paid for
            spent = ledger.spent("Budget")
            with pytest.raises(_Boom):
                list(_stream(PROMPT, max_tokens=MAX, fail=True))
        else:
            astream = _astream(PROMPT, max_tokens=MAX)
            await anext(astream)
            assert ledger.reserved("Budget") == WORST
            await astream.aclose()  # type: ignore[attr-defined]
            spent = ledger.spent("Budget")
            with pytest.raises(_Boom):
                [c async for c in _astream(PROMPT, max_tokens=MAX, fail=True)]
    # Closed after 40 characters and no reported usage: the estimate, 100 in and 10 out.
    assert spent == Decimal("0.00012")
    assert ledger.spent("Budget") == spent  # the failed stream spent nothing
    assert ledger.reserved("Budget") == 0


# -- fail-closed pricing ---------------------------------------------------------------------------
async def test_an_unpriced_model_is_refused_before_the_call(mode: str) -> None:
    agent = _agent(Budget(1, enforce=True))
    with (
        capture_events() as events,
        agent.session() as s,
        pytest.raises(PricingMissingError) as info,
    ):
        await turn(mode, s, _Scripted(), PROMPT, model="gpt-typo", max_tokens=MAX)
    assert info.value.model == "gpt-typo"
    assert isinstance(info.value, ControlFlowError)
    message = str(info.value)
    assert message.startswith("model 'gpt-typo' has no price: an enforced Budget refuses")
    for way in ("register_pricing('gpt-typo', ...)", "a price file", "from_genai_prices()"):
        assert way in message
    assert "unpriced='allow'" in message
    assert events.named("budget.refused")[0].data == {"reason": "unpriced"}
    assert s.iterations == 0  # a refusal is control flow: no turn was used


async def test_precheck_off_still_fails_closed(mode: str) -> None:
    agent = _agent(Budget(1, enforce=True, precheck=False))
    with agent.session() as s, pytest.raises(PricingMissingError):
        await turn(mode, s, _Scripted(), PROMPT, model="nope")


async def test_a_turn_without_a_model_is_refused(mode: str) -> None:
    agent = _agent(Budget(1, enforce=True))
    with agent.session() as s, pytest.raises(PricingMissingError) as info:
        await turn(mode, s, _Scripted(), PROMPT)
    assert info.value.model is None
    assert str(info.value).startswith("the turn names no model to price")


async def test_unpriced_allow_runs_the_turn_at_no_cost(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget(1, enforce=True, unpriced="allow", ledger=ledger))
    with agent.session() as s:
        await turn(mode, s, _Priced(), PROMPT, model="gpt-typo", max_tokens=MAX)
    assert s.iterations == 1
    assert (ledger.spent("Budget"), ledger.reserved("Budget")) == (Decimal(0), Decimal(0))


async def test_a_budget_that_does_not_enforce_only_warns_once(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    _reset_warnings()
    agent = _agent(Budget(1))
    with caplog.at_level(logging.WARNING, "agentmw.pricing"), agent.session() as s:
        for _ in range(2):
            await turn(mode, s, _Priced(), PROMPT, model="unpriced-model", max_tokens=MAX)
    assert s.iterations == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "no price for model 'unpriced-model': its calls cost 0 (register_pricing or a price file)"
    ]


async def test_prices_are_found_ignoring_case(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget(1, enforce=True, ledger=ledger))
    with agent.session() as s:
        await turn(mode, s, _Priced(), PROMPT, model="M", max_tokens=MAX)
    assert ledger.spent("Budget") == WORST


def test_unpriced_is_validated() -> None:
    with pytest.raises(ValueError, match="unpriced must be one of refuse, allow; got 'deny'"):
        Budget(1, unpriced="deny")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unpriced must be one of refuse, allow"):
        Budget(1, unpriced=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_call_usd must be a finite amount >= 0"):
        Budget(1, max_call_usd=-1)


# -- a model switched to an unpriced one -----------------------------------------------------------
def _switching(to: str) -> Policy:
    return Policy(PolicyEngine([Rule("cheap", fact("turns") >= 0, switch_model(to))]))


@pytest.mark.parametrize("policy_first", [True, False], ids=["policy-above", "policy-below"])
async def test_policy_switch_to_an_unpriced_model_is_refused(mode: str, policy_first: bool) -> None:
    ledger = InMemoryLedger()
    budget = Budget(1, enforce=True, ledger=ledger)
    layers = [_switching("gpt-typo"), budget] if policy_first else [budget, _switching("gpt-typo")]
    agent = Agent("p", stack=Stack(layers), pricing=TABLE)
    with agent.session() as s, pytest.raises(PricingMissingError) as info:
        await turn(mode, s, _Scripted(), PROMPT, model="m", max_tokens=MAX)
    assert info.value.model == "gpt-typo"
    assert ledger.reserved("Budget") == 0  # a hold taken before the switch was released


async def test_policy_switch_to_a_priced_model_runs(mode: str) -> None:
    table = PricingTable({"m": ModelPricing(1, 2), "small": ModelPricing(1, 1)})
    ledger = InMemoryLedger()
    agent = Agent(
        "p",
        stack=Stack([_switching("small"), Budget(1, enforce=True, ledger=ledger)]),
        pricing=table,
    )
    with agent.session() as s:
        await turn(mode, s, _Priced(), PROMPT, model="m", max_tokens=MAX)
    assert ledger.spent("Budget") == Decimal("0.0011")  # priced as "small"


async def test_a_fallback_to_an_unpriced_model_is_refused(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = Agent(
        "f",
        stack=Stack([Budget(1, enforce=True, ledger=ledger), Fallback(["gpt-typo"])]),
        pricing=TABLE,
    )
    calls: list[str] = []

    def down(prompt: str, *, model: str = "m", max_tokens: int) -> Usage:
        calls.append(model)
        raise ConnectionError("provider down")

    async def adown(prompt: str, *, model: str = "m", max_tokens: int) -> Usage:
        return down(prompt, model=model, max_tokens=max_tokens)

    with agent.session() as s, pytest.raises(PricingMissingError) as info:
        await turn(mode, s, _Failing(down, adown), PROMPT, model="m", max_tokens=MAX)
    assert info.value.model == "gpt-typo"
    assert calls == ["m"]  # the unpriced fallback model was never called
    assert ledger.reserved("Budget") == 0


async def test_calls_outside_any_session_share_the_layers_own_book(mode: str) -> None:
    budget = Budget(USD, enforce=True)
    stack = Stack([budget])

    @agent_turn(model="m", stack=stack)
    def ask(prompt: str, *, max_tokens: int) -> Usage:
        return slow(prompt, max_tokens=max_tokens)

    @agent_turn(model="m", stack=stack)
    async def aask(prompt: str, *, max_tokens: int) -> Usage:
        return await aslow(prompt, max_tokens=max_tokens)

    ran: list[int] = []

    def worker() -> None:
        while True:
            try:
                ask(PROMPT, max_tokens=MAX)
            except BudgetExceededError:
                return
            ran.append(1)

    async def aworker() -> None:
        while True:
            try:
                await aask(PROMPT, max_tokens=MAX)
            except BudgetExceededError:
                return
            ran.append(1)

    register = TABLE.get("m")
    assert register is not None
    from agentmw.pricing import default_pricing

    default_pricing().register("m", register)  # no agent: the process default table prices it
    try:
        if mode == "sync":
            threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            await asyncio.gather(*(aworker() for _ in range(WORKERS)))
    finally:
        with default_pricing()._lock:
            default_pricing()._prices.pop("m", None)
            default_pricing()._folded.pop("m", None)
            default_pricing()._resolved = {}
    assert len(ran) == CALLS
    assert budget.spent() == Decimal("0.0987")


async def test_a_spent_budget_says_so_and_still_carries_the_estimate(mode: str) -> None:
    ledger = InMemoryLedger()
    ledger.add("Budget", Decimal("0.002"))  # another session spent past it
    agent = _agent(Budget("0.001", enforce=True, ledger=ledger))
    with (
        capture_events() as events,
        agent.session() as s,
        pytest.raises(BudgetExceededError) as info,
    ):
        await turn(mode, s, _Scripted(), PROMPT, model="m", max_tokens=MAX)
    assert str(info.value) == "budget of $0.001 is spent ($0.002 so far)"
    assert (info.value.spent_usd, info.value.reserved_usd) == (Decimal("0.002"), Decimal(0))
    assert info.value.estimate_usd == WORST
    assert events.named("budget.refused")[0].data["reason"] == "exceeded"
