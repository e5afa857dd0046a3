"""The facts the `Policy` layer gives rules, and the check that documents only name known ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["FACTS"]

# What `agentmw.middleware.Policy` computes for each call (see docs/layers/policy.md).
FACTS: tuple[str, ...] = (
    "role",
    "phase",
    "kind",
    "model",
    "tool",
    "turns",
    "tool_calls",
    "tool_count",
    "tokens",
    "cost_usd",
    "elapsed_s",
    "consecutive_failures",
    "last_failure",
    "quality_level",
    "gate_score",
    "completed_roles",
    "failed_roles",
)


def unknown_fact(name: str, known: Iterable[str]) -> str:
    """The problem of a fact name no one provides, with the closest known names."""
    return _unknown(name, tuple(sorted(known)))


@lru_cache(maxsize=256)
def _unknown(name: str, names: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = f"known facts: {', '.join(names)}"
    return f"unknown fact {name!r}; {hint} (declare facts your code supplies with extra_facts=)"
