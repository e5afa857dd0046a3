"""`Stack.default()`: canonical order, each argument's forms, errors, and a full session."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agentmw import Agent, BudgetExceededError, ModelPricing, PermissionDeniedError, Stack, Usage
from agentmw.guardrails import PIIRedactor
from agentmw.middleware import (
    Budget,
    Checkpoint,
    CircuitBreaker,
    Guardrails,
    Limits,
    MaxIterationsExceededError,
    Permissions,
    Policy,
    RateLimit,
    Retry,
    Telemetry,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.policy import PolicyEngine
from agentmw.pricing import PricingTable
from agentmw.stores import InMemorySaver
from agentmw.testing import Reply, ScriptedModel, capture_events

from .errors import http
from .middleware._helpers import tool, turn

CANONICAL = [
    Telemetry,
    Checkpoint,
    Policy,
    Permissions,
    Guardrails,
    Budget,
    Limits,
    Retry,
    CircuitBreaker,
    RateLimit,
]


def _types(stack: Stack) -> list[type]:
    return [type(layer) for layer in stack]


def _everything() -> Stack:
    return Stack.default(
        budget_usd=5,
        rate_limit={"rpm": 600},
        guardrails=[PIIRedactor()],
        permissions=PermissionPolicy({}),
        policy=PolicyEngine([]),
        saver=InMemorySaver(),
    )


def test_plain_default_layers() -> None:
    assert _types(Stack.default()) == [Telemetry, Limits, Retry, CircuitBreaker]
    limits = Stack.default().get(Limits)
    assert isinstance(limits, Limits)
    assert limits.max_turns == 25


def test_every_layer_in_canonical_order() -> None:
    assert _types(_everything()) == CANONICAL


def test_describe_lists_the_order() -> None:
    lines = _everything().describe().splitlines()
    assert [line.split(". ", 1)[1].split()[0] for line in lines] == [
        "Telemetry",
        "Checkpoint",
        "Policy",
        "Permissions",
        "Guardrails",
        "Budget",
        "Limits",
        "Retry",
        "breaker",
        "RateLimit",
    ]
    assert "breaker (CircuitBreaker)" in lines[8]


def test_everything_off_is_empty() -> None:
    stack = Stack.default(max_iterations=None, retry=False, breaker=None, telemetry=False)
    assert len(stack) == 0


# -- each argument: configured from a value, an instance used as is, and left out -----------
def _only(**kw: Any) -> Stack:
    base: dict[str, Any] = {
        "max_iterations": None,
        "retry": False,
        "breaker": False,
        "telemetry": False,
    }
    return Stack.default(**{**base, **kw})


FORMS: list[tuple[str, Any, type, Any]] = [
    ("telemetry", True, Telemetry, Telemetry(name="mine")),
    ("retry", True, Retry, Retry(5)),
    ("breaker", True, CircuitBreaker, CircuitBreaker("x")),
    ("max_iterations", 3, Limits, Limits(max_turns=7)),
    ("budget_usd", "2.5", Budget, Budget(1)),
    ("rate_limit", {"rpm": 60}, RateLimit, RateLimit(rpm=30)),
    ("guardrails", [PIIRedactor()], Guardrails, Guardrails([PIIRedactor()])),
    ("permissions", PermissionPolicy({}), Permissions, Permissions(PermissionPolicy({}))),
    ("policy", PolicyEngine([]), Policy, Policy(PolicyEngine([]))),
    ("saver", InMemorySaver(), Checkpoint, Checkpoint(InMemorySaver())),
]


@pytest.mark.parametrize(("arg", "value", "layer", "instance"), FORMS, ids=[f[0] for f in FORMS])
def test_argument_forms(arg: str, value: Any, layer: type, instance: Any) -> None:
    built = _only(**{arg: value})
    assert _types(built) == [layer]
    assert _only(**{arg: instance})[0] is instance
    assert len(_only(**{arg: None})) == 0
    assert len(_only(**{arg: False})) == 0


def test_values_reach_the_layers() -> None:
    stack = _only(
        budget_usd="2.5", enforce_budget=True, max_iterations=3, rate_limit={"rpm": 60, "tpm": 9}
    )
    budget, limits, limiter = stack.get(Budget), stack.get(Limits), stack.get(RateLimit)
    assert isinstance(budget, Budget)
    assert budget.usd == Decimal("2.5")
    assert budget.enforce
    assert isinstance(limits, Limits)
    assert limits.max_turns == 3
    assert isinstance(limiter, RateLimit)
    assert not _only(budget_usd=1).get(Budget).enforce
    policy = PermissionPolicy({})
    assert _only(permissions=policy).get(Permissions).policy is policy
    assert _only(guardrails=()) == Stack()


@pytest.mark.parametrize(
    ("arg", "value", "accepts"),
    [
        ("telemetry", "yes", "True, False, None or a Telemetry instance"),
        ("retry", 3, "True, False, None or a Retry instance"),
        ("breaker", Retry(), "True, False, None or a CircuitBreaker instance"),
        ("max_iterations", 2.5, "an int or a Limits instance"),
        ("max_iterations", True, "an int or a Limits instance"),
        ("budget_usd", True, "an amount in USD"),
        ("budget_usd", [1], "an amount in USD"),
        ("rate_limit", 60, "a dict of RateLimit options"),
        ("guardrails", "pii", "a list of guardrails"),
        ("permissions", {"writer": "all"}, "a PermissionPolicy"),
        ("policy", [], "a PolicyEngine"),
        ("saver", "checkpoints.db", "a CheckpointSaver"),
        ("enforce_budget", "yes", "True or False"),
    ],
)
def test_wrong_types_name_the_argument(arg: str, value: Any, accepts: str) -> None:
    with pytest.raises(TypeError, match=arg) as info:
        Stack.default(**{arg: value})
    assert accepts in str(info.value)


def test_wrong_guardrail_entry() -> None:
    with pytest.raises(TypeError, match=r"guardrails\[1\]"):
        Stack.default(guardrails=[PIIRedactor(), "no"])


def test_rate_limit_options_are_validated_by_the_layer() -> None:
    with pytest.raises(ValueError, match="at least one of rpm"):
        Stack.default(rate_limit={})


# -- a session through the full default stack ------------------------------------------------
TABLE = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=1)})
REPLY = Reply("ok", Usage(300_000, 100_000))  # $0.40 a turn


def _agent(**kw: Any) -> Agent:
    defaults: dict[str, Any] = {
        "retry": Retry(3, base=0.0, cap=0.0),
        "permissions": PermissionPolicy({"writer": RolePermissions(allow=("t",))}),
        "guardrails": [PIIRedactor()],
        "rate_limit": {"rpm": 6000},
        "saver": InMemorySaver(),
    }
    return Agent("writer", stack=Stack.default(**{**defaults, **kw}), pricing=TABLE)


async def test_session_retries_a_transient_error(mode: str) -> None:
    model = ScriptedModel([http(503), Reply("mail bob@example.com", Usage(10, 5))], model="m")
    with capture_events() as events, _agent().session() as s:
        reply, usage = await turn(mode, s, model, "hi", model="m")
        found = await tool(mode, s, lambda q: f"found {q}", "x")
    assert reply.text == "mail [REDACTED:email]"
    assert usage == Usage(10, 5)
    assert len(model.calls) == 2
    assert events.names().count("retry.scheduled") == 1
    assert found == "found x"
    assert s.iterations == 1
    assert s.usage.input_tokens == 10


async def tool_named(mode: str, session: Any, name: str, fn: Any) -> Any:
    if mode == "sync":
        return session.run_tool(name, fn)

    async def afn() -> Any:
        return fn()

    return await session.arun_tool(name, afn)


async def test_session_denies_an_unlisted_tool(mode: str) -> None:
    ran: list[str] = []
    with _agent().session() as s, pytest.raises(PermissionDeniedError):
        await tool_named(mode, s, "shell", lambda: ran.append("shell"))
    assert ran == []


async def test_session_budget_enforced(mode: str) -> None:
    model = ScriptedModel([REPLY] * 5, model="m")
    with _agent(budget_usd=1, enforce_budget=True).session() as s:
        for _ in range(3):
            await turn(mode, s, model, "hi", model="m")
        with pytest.raises(BudgetExceededError):
            await turn(mode, s, model, "hi", model="m")
    assert s.cost_usd == Decimal("1.2")
    assert len(model.calls) == 3  # the fourth turn is refused before it runs


async def test_session_max_iterations(mode: str) -> None:
    model = ScriptedModel(["ok"] * 5, model="m")
    with _agent(max_iterations=2).session() as s:
        await turn(mode, s, model, "a", model="m")
        await turn(mode, s, model, "b", model="m")
        with pytest.raises(MaxIterationsExceededError):
            await turn(mode, s, model, "c", model="m")
    assert len(model.calls) == 2
