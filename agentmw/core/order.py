"""The order checks of a `Stack`: orders that silently break a layer's guarantee.

The core imports no layer: each layer declares its `order_role` (a class attribute of
`Middleware`) and the checks read the roles. A layer of your own takes part by declaring one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from agentmw.core.middleware import Middleware

__all__: list[str] = []  # `Stack.check` and `StackOrderWarning` are the public face

# Roles that re-check or re-count every attempt when they sit inside Retry.
_COUNTED_ONCE = {
    "budget": "every attempt is checked and charged against the budget again",
    "limits": "every attempt is checked and counted against the limits again",
}
# Roles that must see each attempt, so they belong inside Retry.
_PER_ATTEMPT = {
    "rate_limit": "a retry attempt takes no reservation of its own, so retries go unthrottled",
    "breaker": "the breaker sees one outcome per call instead of every attempt",
    "timeout": "its deadline covers every attempt and backoff, so a hung attempt is never retried",
}
# Roles that spend or count: a Checkpoint inside one of them replays through it.
_SPENDS_OR_COUNTS = {
    "budget": "is checked against the budget",
    "limits": "is counted against the limits",
    "rate_limit": "takes rate-limit quota",
    "concurrency": "takes a concurrency slot",
    "breaker": "goes through the breaker",
}


class OrderProblem(NamedTuple):
    """One order that breaks a guarantee: the two layers (by name) and what to do."""

    outer: str
    inner: str
    message: str


def _label(layer: Middleware) -> str:
    cls = type(layer).__name__
    return layer.name if layer.name == cls else f"{layer.name} ({cls})"


def order_problems(layers: Sequence[Middleware]) -> list[OrderProblem]:
    """The problems of `layers`' order (outermost first), each naming both layers and the fix."""
    roles = [(layer, getattr(layer, "order_role", None)) for layer in layers]
    if sum(role is not None for _, role in roles) < 2:
        return []  # the common small stack: nothing to pair
    problems: list[OrderProblem] = []
    for i, (outer, outer_role) in enumerate(roles):
        if outer_role is None:
            continue
        for inner, inner_role in roles[i + 1 :]:
            if inner_role is None:
                continue
            o, n = _label(outer), _label(inner)
            if outer_role == "retry" and inner_role in _COUNTED_ONCE:
                text = f"{n} inside {o}: {_COUNTED_ONCE[inner_role]}; put {n} before {o}"
            elif inner_role == "retry" and outer_role in _PER_ATTEMPT:
                text = f"{o} outside {n}: {_PER_ATTEMPT[outer_role]}; put {o} after {n}"
            elif inner_role == "checkpoint" and outer_role in _SPENDS_OR_COUNTS:
                does = _SPENDS_OR_COUNTS[outer_role]
                text = f"{n} inside {o}: a replayed step still {does}; put {n} before {o}"
            else:
                continue
            problems.append(OrderProblem(outer.name, inner.name, text))
    return problems
