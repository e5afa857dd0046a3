"""Every public constructor (layers, core, sinks, rules, pricing, testing) checks each argument.

A wrong type raises `TypeError`, a wrong value `ValueError`; the message names the argument.
The stores, savers and sinks of `agentmw.stores` have their own table in
tests/stores/test_constructor_checks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentmw import Agent, Session, Stack
from agentmw.core import AgentRegistry
from agentmw.events import LoggingEventSink, RingBufferEventSink, RingBufferUsageSink
from agentmw.guardrails import DenyPatterns, MaxLength, PIIRedactor, PromptInjectionGuard
from agentmw.middleware import (
    Budget,
    Checkpoint,
    CircuitBreaker,
    Concurrency,
    Fallback,
    Guardrails,
    Limits,
    Permissions,
    Policy,
    RateLimit,
    Retry,
    Telemetry,
    Timeout,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.policy import PolicyEngine, Rule, deny
from agentmw.pricing import ModelPricing, PricingTable
from agentmw.quality import QualityGate
from agentmw.stores import InMemorySaver
from agentmw.testing import FakeClock, ScriptedModel

# (label, build(**overrides), argument, a wrong type, a wrong value or None when any value of
# the right type is fine)
Case = tuple[str, Callable[..., Any], str, Any, Any]


def _budget(**kw: Any) -> Any:
    return Budget(kw.pop("usd", 1), **kw)


def _breaker(**kw: Any) -> Any:
    return CircuitBreaker(kw.pop("name", "b"), **kw)


def _retry(**kw: Any) -> Any:
    return Retry(**kw)


def _rate(**kw: Any) -> Any:
    kw.setdefault("rpm", 60)
    return RateLimit(**kw)


def _concurrency(**kw: Any) -> Any:
    return Concurrency(kw.pop("max_in_flight", 4), **kw)


def _fallback(**kw: Any) -> Any:
    return Fallback(kw.pop("models", ["m"]), **kw)


def _timeout(**kw: Any) -> Any:
    return Timeout(kw.pop("seconds", 1.0), **kw)


def _guardrails(**kw: Any) -> Any:
    return Guardrails(kw.pop("guards", [PIIRedactor()]), **kw)


def _permissions(**kw: Any) -> Any:
    return Permissions(kw.pop("policy", PermissionPolicy({})), **kw)


def _policy(**kw: Any) -> Any:
    return Policy(kw.pop("engine", PolicyEngine([])), **kw)


def _checkpoint(**kw: Any) -> Any:
    return Checkpoint(kw.pop("saver", InMemorySaver()), **kw)


def _agent(**kw: Any) -> Any:
    return Agent(kw.pop("role", "writer"), **kw)


def _session(**kw: Any) -> Any:
    return Session(kw.pop("agent", Agent("w")), **kw)


def _pricing(**kw: Any) -> Any:
    base: dict[str, Any] = {"input_per_million": 1, "output_per_million": 1}
    return ModelPricing(**{**base, **kw})


def _scripted(**kw: Any) -> Any:
    return ScriptedModel(kw.pop("script", ["a"]), **kw)


CASES: list[Case] = [
    # layers
    ("Budget", _budget, "usd", [1], -1),
    ("Budget", _budget, "enforce", "yes", None),
    ("Budget", _budget, "precheck", 1, None),
    ("Budget", _budget, "estimate", 5, None),
    ("Budget", _budget, "ledger", object(), None),
    ("Budget", _budget, "max_call_usd", [1], -1),
    ("Budget", _budget, "unpriced", 1, "deny"),
    ("Limits", Limits, "max_turns", 2.5, -1),
    ("Limits", Limits, "max_tool_calls", "3", -1),
    ("Limits", Limits, "max_total_tokens", 1.0, -5),
    ("Limits", Limits, "max_cost_usd", [1], -1),
    ("RateLimit", _rate, "rpm", "60", 0),
    ("RateLimit", _rate, "tpm", "1000", -1),
    ("RateLimit", _rate, "burst", "all", 2),
    ("RateLimit", _rate, "max_wait", "1s", -1),
    ("RateLimit", _rate, "key", 5, None),
    ("RateLimit", _rate, "estimate", 5, None),
    ("RateLimit", _rate, "clock", 5, None),
    ("RateLimit", _rate, "store", object(), None),
    ("Concurrency", _concurrency, "max_in_flight", 2.5, 0),
    ("Concurrency", _concurrency, "key", 5, " "),
    ("Concurrency", _concurrency, "max_wait", "1s", -1),
    ("Concurrency", _concurrency, "store", object(), None),
    ("CircuitBreaker", _breaker, "name", 5, " "),
    ("CircuitBreaker", _breaker, "failure_threshold", 2.5, 0),
    ("CircuitBreaker", _breaker, "recovery_timeout", "30", 0),
    ("CircuitBreaker", _breaker, "half_open_max_calls", True, 0),
    ("CircuitBreaker", _breaker, "failure_ratio", "half", 2),
    ("CircuitBreaker", _breaker, "minimum_calls", 1.5, 0),
    ("CircuitBreaker", _breaker, "window", "1m", -1),
    ("CircuitBreaker", _breaker, "key", "model", None),
    ("CircuitBreaker", _breaker, "clock", 5, None),
    ("CircuitBreaker", _breaker, "store", object(), None),
    ("Retry", _retry, "attempts", 2.5, 0),
    ("Retry", _retry, "jitter", 1, "sometimes"),
    ("Retry", _retry, "base", "1", -1),
    ("Retry", _retry, "cap", "1", -1),
    ("Retry", _retry, "respect_retry_after", 1, None),
    ("Retry", _retry, "max_retry_after", "2", -1),
    ("Retry", _retry, "sleep", 5, None),
    ("Retry", _retry, "asleep", 5, None),
    ("Retry", _retry, "recover", 5, None),
    ("Fallback", _fallback, "models", [3], []),
    ("Timeout", _timeout, "seconds", "1", 0),
    ("Guardrails", _guardrails, "guards", [object()], None),
    ("Guardrails", _guardrails, "stream_window", 1.5, 0),
    ("Permissions", _permissions, "policy", {}, None),
    ("Policy", _policy, "engine", [], None),
    ("Policy", _policy, "gate", "strict", None),
    ("Policy", _policy, "clock", 5, None),
    ("Checkpoint", _checkpoint, "saver", object(), None),
    ("Checkpoint", _checkpoint, "on_divergence", 1, "ignore"),
    ("Checkpoint", _checkpoint, "store_results", "no", None),
    ("Telemetry", Telemetry, "tracer_provider", object(), None),
    ("Telemetry", Telemetry, "meter_provider", object(), None),
    ("Telemetry", Telemetry, "provider_name", 5, " "),
    ("Telemetry", Telemetry, "capture_content", "yes", None),
    ("any layer", _timeout, "name", 5, " "),
    ("any layer", _timeout, "kinds", 5, ["turn", "model"]),
    # core
    ("Agent", _agent, "role", 5, " "),
    ("Agent", _agent, "phase", 5, " "),
    ("Agent", _agent, "project_id", 1.5, None),
    ("Agent", _agent, "stack", 5, None),
    ("Agent", _agent, "event_sink", object(), None),
    ("Agent", _agent, "usage_sink", object(), None),
    ("Agent", _agent, "registry", object(), None),
    ("Agent", _agent, "pricing", {}, None),
    ("AgentRegistry", AgentRegistry, "max_finished", "10", -1),
    ("Session", _session, "agent", "writer", None),
    ("Session", _session, "thread_id", 5, " "),
    ("Session", _session, "handoff", {}, None),
    # sinks
    ("RingBufferEventSink", RingBufferEventSink, "capacity", 1.5, 0),
    ("RingBufferUsageSink", RingBufferUsageSink, "capacity", "10", 0),
    ("LoggingEventSink", LoggingEventSink, "logger", 5, None),
    ("LoggingEventSink", LoggingEventSink, "level", "INFO", -1),
    # rules
    ("DenyPatterns", lambda **kw: DenyPatterns(**{"patterns": ["x"], **kw}), "patterns", 5, ["("]),
    ("DenyPatterns", lambda **kw: DenyPatterns(["x"], **kw), "stages", 5, ["inbound"]),
    ("MaxLength", lambda **kw: MaxLength(**{"chars": 10, **kw}), "chars", "10", 0),
    ("PIIRedactor", PIIRedactor, "kinds", 5, ["passport"]),
    ("PIIRedactor", PIIRedactor, "strategy", 5, "shred"),
    ("PIIRedactor", PIIRedactor, "stages", 5, ["inbound"]),
    ("PromptInjectionGuard", PromptInjectionGuard, "extra_patterns", 5, ["("]),
    ("PermissionPolicy", lambda **kw: PermissionPolicy(**{"roles": {}, **kw}), "roles", [], None),
    ("PermissionPolicy", lambda **kw: PermissionPolicy({}, **kw), "unknown_role", 5, "maybe"),
    ("PermissionPolicy", lambda **kw: PermissionPolicy({}, **kw), "tool_modes", [], None),
    ("RolePermissions", RolePermissions, "allow", "x", [""]),
    ("RolePermissions", RolePermissions, "deny", "x", [" "]),
    ("RolePermissions", RolePermissions, "mode", 1.5, "root"),
    ("PolicyEngine", lambda **kw: PolicyEngine(**{"rules": [], **kw}), "rules", 5, None),
    (
        "Rule",
        lambda **kw: Rule(**{"name": "r", "when": True, "then": deny("x"), **kw}),
        "name",
        5,
        " ",
    ),
    (
        "Rule",
        lambda **kw: Rule(**{"name": "r", "when": True, "then": deny("x"), **kw}),
        "then",
        5,
        [],
    ),
    (
        "Rule",
        lambda **kw: Rule(**{"name": "r", "when": True, "then": deny("x"), **kw}),
        "priority",
        "1",
        None,
    ),
    (
        "QualityGate",
        lambda **kw: QualityGate(**{"required": "strict", **kw}),
        "required",
        1.5,
        "perfect",
    ),
    # pricing
    ("ModelPricing", _pricing, "input_per_million", [1], -1),
    ("ModelPricing", _pricing, "output_per_million", None, "x"),
    ("ModelPricing", _pricing, "cache_read_per_million", True, -1),
    ("PricingTable", PricingTable, "prices", 5, {"m": {"input_per_million": -1}}),
    ("PricingTable", PricingTable, "fallback", 5, None),
    # testing
    ("ScriptedModel", _scripted, "script", 5, None),
    ("ScriptedModel", _scripted, "model", 5, " "),
    ("ScriptedModel", _scripted, "repeat_last", "yes", None),
    ("ScriptedModel", _scripted, "chunk_size", "8", 0),
    ("FakeClock", FakeClock, "start", "0", float("nan")),
]


def _case_id(case: Case) -> str:
    return f"{case[0]}.{case[2]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_wrong_type_is_a_type_error_naming_the_argument(case: Case) -> None:
    _, build, argument, wrong_type, _ = case
    with pytest.raises(TypeError) as info:
        build(**{argument: wrong_type})
    assert argument in str(info.value), str(info.value)


@pytest.mark.parametrize("case", [c for c in CASES if c[4] is not None], ids=_case_id)
def test_a_wrong_value_is_a_value_error_naming_the_argument(case: Case) -> None:
    _, build, argument, _, wrong_value = case
    with pytest.raises(ValueError) as info:
        build(**{argument: wrong_value})
    assert argument in str(info.value), str(info.value)


def test_the_defaults_build() -> None:
    built = {label: build() for label, build, *_ in CASES}
    assert len(built) >= 30
    layers = [x for x in built.values() if hasattr(x, "kinds")]
    assert len(Stack([layers[0]])) == 1
