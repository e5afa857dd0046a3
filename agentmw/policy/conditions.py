"""Policy conditions: comparisons on facts, combinators and custom (sync or async) callables."""

from __future__ import annotations

import contextlib
import inspect
import logging
import operator
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__: list[str] = []  # public through `agentmw.policy`

Facts = Mapping[str, Any]


class Condition(ABC):
    """A test on facts. Combine with `all_of`, `any_of`, `not_`, `&`, `|` and `~`."""

    @abstractmethod
    def check(self, facts: Facts) -> bool:
        """Evaluate synchronously (an async condition raises `TypeError`)."""

    async def acheck(self, facts: Facts) -> bool:
        """Evaluate, awaiting async conditions at any depth."""
        return self.check(facts)

    def __and__(self, other: Condition) -> Condition:
        return all_of(self, other)

    def __or__(self, other: Condition) -> Condition:
        return any_of(self, other)

    def __invert__(self) -> Condition:
        return not_(self)


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "contains": lambda a, b: b in a,
}
COMPARISONS = tuple(_OPS)


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Condition):
    """`facts[fact] <op> value`; a missing fact or incomparable types make it False."""

    fact: str
    op: str
    value: Any

    def check(self, facts: Facts) -> bool:
        current = facts.get(self.fact)
        if current is None and self.op not in ("eq", "ne"):
            return False
        value = self.value
        if self.op in ORDERING and isinstance(value, str) and _is_number(current):
            # A threshold written as a string ("0.015", common in config files) compares as a
            # number against a numeric fact instead of silently never matching.
            with contextlib.suppress(InvalidOperation):
                value = Decimal(value)
        try:
            return bool(_OPS[self.op](current, value))
        except TypeError:
            _warn_incomparable(self, current)
            return False


ORDERING = frozenset({"gt", "ge", "lt", "le"})
_warned: set[tuple[str, str, str]] = set()
log = logging.getLogger("agentmw.policy")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _warn_incomparable(condition: Compare, current: Any) -> None:
    key = (condition.fact, condition.op, type(condition.value).__name__)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "policy condition on fact %r (%s) compares a %s with a %s: it never matches",
            condition.fact,
            condition.op,
            type(current).__name__,
            type(condition.value).__name__,
        )


class Fact:
    """A reference to a fact, compared to build a condition: `fact("cost_usd") > 5`."""

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]  # == builds a condition, so no hashing

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"fact name must be a non-blank string, got {name!r}")
        self.name = name

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "eq", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "ne", value)

    def __gt__(self, value: Any) -> Compare:
        return Compare(self.name, "gt", value)

    def __ge__(self, value: Any) -> Compare:
        return Compare(self.name, "ge", value)

    def __lt__(self, value: Any) -> Compare:
        return Compare(self.name, "lt", value)

    def __le__(self, value: Any) -> Compare:
        return Compare(self.name, "le", value)

    def is_in(self, values: Iterable[Any]) -> Compare:
        """The fact is one of `values`."""
        return Compare(self.name, "in", tuple(values))

    def is_not_in(self, values: Iterable[Any]) -> Compare:
        """The fact is none of `values`."""
        return Compare(self.name, "not_in", tuple(values))

    def contains(self, value: Any) -> Compare:
        """The fact (a collection or string) contains `value`."""
        return Compare(self.name, "contains", value)


def fact(name: str) -> Fact:
    """Refer to the fact `name` (see the `Policy` layer for the facts it provides)."""
    return Fact(name)


@dataclass(frozen=True, slots=True, eq=False)
class AllOf(Condition):
    conditions: tuple[Condition, ...]

    def check(self, facts: Facts) -> bool:
        return all(c.check(facts) for c in self.conditions)

    async def acheck(self, facts: Facts) -> bool:
        for c in self.conditions:
            if not await c.acheck(facts):
                return False
        return True


@dataclass(frozen=True, slots=True, eq=False)
class AnyOf(Condition):
    conditions: tuple[Condition, ...]

    def check(self, facts: Facts) -> bool:
        return any(c.check(facts) for c in self.conditions)

    async def acheck(self, facts: Facts) -> bool:
        for c in self.conditions:
            if await c.acheck(facts):
                return True
        return False


@dataclass(frozen=True, slots=True, eq=False)
class Not(Condition):
    condition: Condition

    def check(self, facts: Facts) -> bool:
        return not self.condition.check(facts)

    async def acheck(self, facts: Facts) -> bool:
        return not await self.condition.acheck(facts)


@dataclass(frozen=True, slots=True, eq=False)
class Always(Condition):
    def check(self, facts: Facts) -> bool:
        return True


@dataclass(frozen=True, slots=True, eq=False)
class Custom(Condition):
    """A callable `fn(facts) -> bool`, or an async one (usable on the async path only)."""

    fn: Callable[[Facts], bool | Awaitable[bool]]

    def check(self, facts: Facts) -> bool:
        result = self.fn(facts)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # never leave an un-awaited coroutine behind
            raise TypeError("an async policy condition needs the async path (await the call)")
        return bool(result)

    async def acheck(self, facts: Facts) -> bool:
        result = self.fn(facts)
        return bool(await result if inspect.isawaitable(result) else result)


def as_condition(value: Condition | Callable[[Facts], Any] | bool) -> Condition:
    """A condition from a condition, a callable or a constant `True`."""
    if isinstance(value, Condition):
        return value
    if value is True:
        return Always()
    if callable(value):
        return Custom(value)
    raise TypeError(f"a condition must be a Condition, a callable or True; got {value!r}")


def all_of(*conditions: Condition | Callable[[Facts], Any] | bool) -> Condition:
    """True when every condition is (checked in order, stopping at the first False)."""
    return AllOf(tuple(as_condition(c) for c in conditions))


def any_of(*conditions: Condition | Callable[[Facts], Any] | bool) -> Condition:
    """True when any condition is (checked in order, stopping at the first True)."""
    return AnyOf(tuple(as_condition(c) for c in conditions))


def not_(condition: Condition | Callable[[Facts], Any] | bool) -> Condition:
    """The negation of `condition`."""
    return Not(as_condition(condition))
