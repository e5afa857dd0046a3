"""`UsageTracker`: thread-safe running usage and cost totals, per model."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agentmw.pricing import format_cost
from agentmw.usage import Usage

__all__ = ["ModelTotals", "UsageTracker"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """Accumulated usage of one model."""

    model: str
    calls: int
    usage: Usage
    cost_usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        """Calls, usage fields, `cost_usd` (Decimal) and `cost` (formatted)."""
        return {
            "calls": self.calls,
            **self.usage.as_dict(),
            "cost_usd": self.cost_usd,
            "cost": format_cost(self.cost_usd),
        }


class _Totals:
    """Mutable accumulators: `record` adds ints in place; `Usage` objects are built on read."""

    __slots__ = ("calls", "cost", "counts")

    def __init__(self) -> None:
        self.calls = 0
        self.cost = _ZERO
        self.counts = [0, 0, 0, 0, 0, 0]

    def add(self, usage: Usage, cost: Decimal, calls: int = 1) -> None:
        c = self.counts
        c[0] += usage.input_tokens
        c[1] += usage.output_tokens
        c[2] += usage.cache_read_tokens
        c[3] += usage.cache_write_tokens
        c[4] += usage.reasoning_tokens
        c[5] += usage.tool_calls
        self.calls += calls
        self.cost += cost

    def usage(self) -> Usage:
        return Usage(*self.counts)


class UsageTracker:
    """Running totals of usage and cost, overall and per model.

    `record` is O(1) and thread-safe; money is `Decimal`, so totals never drift.
    """

    __slots__ = ("_lock", "_models", "calls", "cost_usd")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, _Totals] = {}
        # The overall cost and calls are kept on record (budgets read the cost on every call);
        # the overall tokens are summed over the models when read.
        self.cost_usd = _ZERO
        """Total cost across models (an immutable `Decimal`: read without a lock)."""
        self.calls = 0
        """Recorded calls across models."""

    def record(self, model: str | None, usage: Usage, cost_usd: Decimal = _ZERO) -> None:
        """Add one call's usage and cost under `model` ("unknown" when None)."""
        lock = self._lock  # acquire/release: `with` makes two bound methods a call
        lock.acquire()
        try:
            self.record_locked(model, usage, cost_usd)
        finally:
            lock.release()

    @property
    def lock(self) -> threading.Lock:
        """The lock guarding the totals; an owner may share it (the session's call runner
        counts its turns under it) and then records with `record_locked`."""
        return self._lock

    def record_locked(self, model: str | None, usage: Usage, cost_usd: Decimal) -> None:
        """`record` for a caller that holds `lock`."""
        key = model or "unknown"
        totals = self._models.get(key)
        if totals is None:
            totals = self._models[key] = _Totals()
        # `_Totals.add` inline (the call path), the cache and reasoning counts only when set.
        c = totals.counts
        c[0] += usage.input_tokens
        c[1] += usage.output_tokens
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        if read or write:
            c[2] += read
            c[3] += write
        reasoning, tools = usage.reasoning_tokens, usage.tool_calls
        if reasoning or tools:
            c[4] += reasoning
            c[5] += tools
        totals.calls += 1
        totals.cost += cost_usd
        self.cost_usd += cost_usd
        self.calls += 1

    def _total(self) -> _Totals:
        """The totals across models (the caller holds the lock)."""
        total = _Totals()
        counts = total.counts
        for t in self._models.values():
            for index, value in enumerate(t.counts):
                counts[index] += value
        total.calls, total.cost = self.calls, self.cost_usd
        return total

    @property
    def usage(self) -> Usage:
        """Total usage across models."""
        with self._lock:
            return self._total().usage()

    def summary(self) -> dict[str, Any]:
        """Totals and per-model totals, with `cost_usd` (Decimal) and `cost` (formatted)."""
        models = self.per_model()
        with self._lock:
            total = self._total()
            usage, cost, calls = total.usage(), total.cost, total.calls
        return {
            "calls": calls,
            "usage": usage.as_dict(),
            "cost_usd": cost,
            "cost": format_cost(cost),
            "models": {name: totals.as_dict() for name, totals in models.items()},
        }

    def per_model(self) -> dict[str, ModelTotals]:
        """A snapshot of the totals per model."""
        with self._lock:
            return {
                name: ModelTotals(name, t.calls, t.usage(), t.cost)
                for name, t in self._models.items()
            }

    def restore(self, models: dict[str, ModelTotals]) -> None:
        """Replace every total with `models` (used when resuming a durable session)."""
        fresh: dict[str, _Totals] = {}
        total = _Totals()
        for name, m in models.items():
            fresh[name] = _Totals()
            fresh[name].add(m.usage, m.cost_usd, m.calls)
            total.add(m.usage, m.cost_usd, m.calls)
        with self._lock:
            self._models, self.cost_usd, self.calls = fresh, total.cost, total.calls
