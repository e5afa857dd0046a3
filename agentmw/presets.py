"""`Stack.default()`: the canonical layer order, each layer configured from one argument.

The one module that imports every layer. The core's `Stack.default` and `run_turn(timeout=)`
call the builders registered at the bottom (the package root imports this module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from agentmw.core.middleware import Middleware
from agentmw.core.stack import register_preset
from agentmw.guardrails import Guardrail
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
from agentmw.permissions import PermissionPolicy
from agentmw.policy import PolicyEngine
from agentmw.stores import CheckpointSaver

__all__: list[str] = []  # `Stack.default` is the public face


def _wrong(argument: str, accepts: str, value: Any) -> TypeError:
    return TypeError(f"{argument} accepts {accepts}; got {type(value).__name__} {value!r}")


def _switch(
    argument: str, value: Any, layer: type[Middleware], build: Callable[[], Middleware]
) -> Middleware | None:
    """True builds the default layer, None/False leaves it out, an instance is used as is."""
    if value is True:
        return build()
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    raise _wrong(argument, f"True, False, None or a {layer.__name__} instance", value)


def _wrapped(
    argument: str, value: Any, layer: type[Middleware], config: type, build: Callable[[Any], Any]
) -> Middleware | None:
    """None/False leaves the layer out; a layer instance is used; a `config` is wrapped."""
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    if isinstance(value, config):
        return build(value)  # type: ignore[no-any-return]
    accepts = f"None, False, a {config.__name__} or a {layer.__name__} instance"
    raise _wrong(argument, accepts, value)


def default_layers(
    *,
    budget_usd: Any,
    enforce_budget: bool,
    max_iterations: Any,
    retry: Any,
    breaker: Any,
    rate_limit: Any,
    guardrails: Any,
    permissions: Any,
    policy: Any,
    saver: Any,
    telemetry: Any,
    fallback: Any = None,
    concurrency: Any = None,
) -> list[Middleware]:
    """The layers of `Stack.default(...)`, in the canonical order (see its docstring)."""
    if not isinstance(enforce_budget, bool):
        raise _wrong("enforce_budget", "True or False", enforce_budget)
    if enforce_budget and (budget_usd is None or budget_usd is False):
        raise ValueError(
            "enforce_budget=True needs budget_usd (the amount to enforce), e.g. "
            "Stack.default(budget_usd=5, enforce_budget=True); without it no Budget is added"
        )
    layers = [
        _switch("telemetry", telemetry, Telemetry, Telemetry),
        _wrapped("saver", saver, Checkpoint, CheckpointSaver, Checkpoint),
        _wrapped("policy", policy, Policy, PolicyEngine, Policy),
        _wrapped("permissions", permissions, Permissions, PermissionPolicy, Permissions),
        _guardrails(guardrails, Guardrails, Guardrail),
        _budget(budget_usd, enforce_budget, Budget),
        _limits(max_iterations, Limits),
        _fallback(fallback, Fallback),
        _switch("retry", retry, Retry, Retry),
        _switch("breaker", breaker, CircuitBreaker, lambda: CircuitBreaker("breaker")),
        _rate_limit(rate_limit, RateLimit),
        _concurrency(concurrency, Concurrency),
    ]
    return [layer for layer in layers if layer is not None]


def _timeout(seconds: float, *, name: str) -> Middleware:
    return Timeout(seconds, name=name)


def _guardrails(value: Any, layer: type[Any], guard_type: type) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    accepts = "None, False, a list of guardrails or a Guardrails instance"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _wrong("guardrails", accepts, value)
    guards = list(value)
    if not guards:
        return None
    for index, guard in enumerate(guards):
        if not isinstance(guard, guard_type):
            raise TypeError(f"guardrails[{index}] must be a guardrail, got {type(guard).__name__}")
    return layer(guards)


def _budget(value: Any, enforce: bool, layer: type[Any]) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        if enforce and not value.enforce:
            raise ValueError(
                "enforce_budget=True, but the Budget given as budget_usd does not enforce; "
                "build it with Budget(..., enforce=True)"
            )
        return value
    if isinstance(value, (int, float, Decimal, str)) and not isinstance(value, bool):
        return layer(value, enforce=enforce)
    accepts = "None, an amount in USD (int, float, Decimal, str) or a Budget instance"
    raise _wrong("budget_usd", accepts, value)


def _limits(value: Any, layer: type[Any]) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    if type(value) is int:
        return layer(max_turns=value)
    raise _wrong("max_iterations", "None, False, an int or a Limits instance", value)


def _rate_limit(value: Any, layer: type[Any]) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    if isinstance(value, Mapping):
        return layer(**value)
    raise _wrong("rate_limit", "None, False, a dict of RateLimit options or a RateLimit", value)


def _fallback(value: Any, layer: type[Any]) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("fallback must name at least one model, got an empty list")
        return layer(value)
    raise _wrong("fallback", "None, False, a list of model names or a Fallback instance", value)


def _concurrency(value: Any, layer: type[Any]) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, layer):
        return value
    if type(value) is int:
        if value < 1:
            raise ValueError(f"concurrency must be an int >= 1 (calls in flight), got {value}")
        return layer(value)
    raise _wrong("concurrency", "None, False, an int or a Concurrency instance", value)


register_preset("default", default_layers)
register_preset("timeout", _timeout)
