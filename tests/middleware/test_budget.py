"""Budget: recording, the exceeded event, enforcement, precheck, shared ledgers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentmw import Agent, BudgetExceededError, ControlFlowError, ModelPricing, Usage
from agentmw.events import RingBufferUsageSink
from agentmw.middleware import Budget
from agentmw.pricing import PricingTable
from agentmw.stores import InMemoryLedger
from agentmw.testing import Reply, ScriptedModel, capture_events

from ._helpers import turn

# $1 per million tokens in and out: 1,000,000 tokens cost exactly $1.
TABLE = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=1)})
REPLY = Reply("ok", Usage(300_000, 100_000))  # $0.40 per turn


def _agent(budget: Budget, **kw: object) -> Agent:
    return Agent("b", stack=[budget], pricing=TABLE, **kw)  # type: ignore[arg-type]


async def test_records_cost_and_emits_exceeded_once(mode: str) -> None:
    sink = RingBufferUsageSink()
    agent = _agent(Budget(1), usage_sink=sink)
    model = ScriptedModel([REPLY] * 5)
    with capture_events() as events, agent.session() as s:
        for _ in range(5):
            await turn(mode, s, model, model="m")
    assert s.cost_usd == Decimal("2.0")
    assert len(events.named("budget.exceeded")) == 1
    assert events.named("budget.exceeded")[0].data["spent_usd"] == "1.2"
    assert [r.cost_usd for r in sink.records] == [Decimal("0.4")] * 5


async def test_enforce_stops_before_the_next_call(mode: str) -> None:
    agent = _agent(Budget("0.5", enforce=True, precheck=False))
    model = ScriptedModel([REPLY] * 5)
    with agent.session() as s:
        await turn(mode, s, model, model="m")
        await turn(mode, s, model, model="m")  # spent 0.4 <= 0.5: allowed, ends at 0.8
        with pytest.raises(BudgetExceededError) as info:
            await turn(mode, s, model, model="m")
    assert len(model.calls) == 2  # the refused call never reached the function
    assert info.value.budget_usd == Decimal("0.5")
    assert info.value.spent_usd == Decimal("0.8")
    assert isinstance(info.value, ControlFlowError)


async def test_precheck_refuses_a_call_that_would_cross(mode: str) -> None:
    budget = Budget("0.5", enforce=True, estimate=lambda call: Usage(200_000, 0))
    agent = _agent(budget)
    model = ScriptedModel([REPLY] * 5)
    with capture_events() as events, agent.session() as s:
        await turn(mode, s, model, model="m")  # 0 + 0.2 <= 0.5
        with pytest.raises(BudgetExceededError) as info:
            await turn(mode, s, model, model="m")  # 0.4 + 0.2 > 0.5
    assert len(model.calls) == 1
    assert info.value.estimate_usd == Decimal("0.2")
    assert events.named("budget.refused")[0].data["reason"] == "precheck"


async def test_precheck_default_estimate_uses_max_tokens(mode: str) -> None:
    agent = _agent(Budget("0.1", enforce=True))
    model = ScriptedModel([REPLY])
    with agent.session() as s, pytest.raises(BudgetExceededError):
        await turn(mode, s, model, "hi", model="m", max_tokens=200_000)
    assert model.calls == []


async def test_not_enforced_never_refuses(mode: str) -> None:
    agent = _agent(Budget(0))
    model = ScriptedModel([REPLY] * 2)
    with agent.session() as s:
        await turn(mode, s, model, model="m")
        await turn(mode, s, model, model="m")
    assert len(model.calls) == 2


async def test_shared_ledger_spans_sessions(mode: str) -> None:
    ledger = InMemoryLedger()
    agent = _agent(Budget(1, enforce=True, precheck=False, ledger=ledger))
    model = ScriptedModel([REPLY] * 9)
    with agent.session() as s1:
        for _ in range(2):
            await turn(mode, s1, model, model="m")
    with agent.session() as s2:
        await turn(mode, s2, model, model="m")  # 0.8 <= 1
        with pytest.raises(BudgetExceededError):
            await turn(mode, s2, model, model="m")  # 1.2 > 1
    assert ledger.spent("Budget") == Decimal("1.2")
    assert len(model.calls) == 3


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "abc"])
def test_usd_must_be_finite_non_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="usd must be a finite amount >= 0"):
        Budget(bad)  # type: ignore[arg-type]


def test_wrong_types_name_the_argument() -> None:
    with pytest.raises(TypeError, match="usd must be an amount in USD"):
        Budget(True)  # a bool is an int to mypy; the runtime check refuses it
    with pytest.raises(
        TypeError, match=r"ledger must be a Ledger \(missing aadd, add, arelease, areserve"
    ):
        Budget(1, ledger=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="estimate must be a callable"):
        Budget(1, estimate=0.5)  # type: ignore[arg-type]


def test_ledger_check_and_add() -> None:
    ledger = InMemoryLedger()
    assert ledger.add("k", Decimal("0.6"), limit=Decimal(1)).added
    refused = ledger.add("k", Decimal("0.6"), limit=Decimal(1))
    assert (refused.added, refused.total) == (False, Decimal("0.6"))
    assert ledger.add("k", Decimal("0.6")).total == Decimal("1.2")
