"""`Stack.default()`: the canonical layer order, each layer configured from one argument."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._middleware import Middleware

if TYPE_CHECKING:
    from ._stack import Stack

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


def _default(
    cls: type[Stack],
    *,
    budget_usd: Any = None,
    enforce_budget: bool = False,
    max_iterations: Any = 25,
    retry: Any = True,
    breaker: Any = True,
    rate_limit: Any = None,
    guardrails: Any = (),
    permissions: Any = None,
    policy: Any = None,
    saver: Any = None,
    telemetry: Any = True,
) -> Stack:
    """The canonical order (Telemetry, Checkpoint, Policy, Permissions, Guardrails, Budget,
    Limits, Retry, CircuitBreaker, RateLimit) with the layers the arguments ask for.

    `Stack.default(...)`. Each argument takes `None`/`False` to leave its layer out, or a
    configured layer instance to use as is; otherwise:

    Args:
        budget_usd: an amount in USD: `Budget(budget_usd, enforce=enforce_budget)`.
        enforce_budget: the default Budget raises `BudgetExceededError` instead of warning.
        max_iterations: an int: `Limits(max_turns=max_iterations)`.
        retry: True: `Retry()` (3 attempts, full-jitter backoff).
        breaker: True: `CircuitBreaker("breaker")` (one circuit per model, per tool).
        rate_limit: a dict of `RateLimit` options: `RateLimit(**rate_limit)`.
        guardrails: a list of guardrails: `Guardrails(guardrails)` (empty: none).
        permissions: a `PermissionPolicy`: `Permissions(permissions)`.
        policy: a `PolicyEngine`: `Policy(policy)`.
        saver: a checkpoint saver: `Checkpoint(saver)`.
        telemetry: True: `Telemetry()` on the global OpenTelemetry providers.

    Raises:
        TypeError: an argument has a type it does not accept (the message says which).
    """
    # Imported here: the layers import the core, and the core defines `Stack` with this method.
    from .guardrails import Guardrail
    from .middleware import (
        Budget,
        Checkpoint,
        CircuitBreaker,
        Guardrails,
        Limits,
        Permissions,
        Policy,
        RateLimit,
        Retry,
        Telemetry,
    )
    from .permissions import PermissionPolicy
    from .policy import PolicyEngine
    from .stores._checkpoint_records import CheckpointSaver

    if not isinstance(enforce_budget, bool):
        raise _wrong("enforce_budget", "True or False", enforce_budget)
    layers = [
        _switch("telemetry", telemetry, Telemetry, Telemetry),
        _wrapped("saver", saver, Checkpoint, CheckpointSaver, Checkpoint),
        _wrapped("policy", policy, Policy, PolicyEngine, Policy),
        _wrapped("permissions", permissions, Permissions, PermissionPolicy, Permissions),
        _guardrails(guardrails, Guardrails, Guardrail),
        _budget(budget_usd, enforce_budget, Budget),
        _limits(max_iterations, Limits),
        _switch("retry", retry, Retry, Retry),
        _switch("breaker", breaker, CircuitBreaker, lambda: CircuitBreaker("breaker")),
        _rate_limit(rate_limit, RateLimit),
    ]
    return cls([layer for layer in layers if layer is not None])


_default.__name__ = "default"  # it is `Stack.default` in help() and the API reference
_default.__qualname__ = "Stack.default"


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
