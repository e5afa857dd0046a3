"""`UsageTracker`: thread-safe running usage and cost totals, per model."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._pricing import format_cost
from ._usage import Usage

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


class UsageTracker:
    """Running totals of usage and cost, overall and per model.

    `record` is O(1) and thread-safe; money is `Decimal`, so totals never drift.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelTotals] = {}
        self._usage = Usage()
        self._cost = _ZERO
        self._calls = 0

    def record(self, model: str | None, usage: Usage, cost_usd: Decimal = _ZERO) -> None:
        """Add one call's usage and cost under `model` ("unknown" when None)."""
        key = model or "unknown"
        with self._lock:
            prev = self._models.get(key)
            if prev is None:
                self._models[key] = ModelTotals(key, 1, usage, cost_usd)
            else:
                self._models[key] = ModelTotals(
                    key, prev.calls + 1, prev.usage + usage, prev.cost_usd + cost_usd
                )
            self._usage = self._usage + usage
            self._cost += cost_usd
            self._calls += 1

    @property
    def usage(self) -> Usage:
        """Total usage across models."""
        return self._usage

    @property
    def cost_usd(self) -> Decimal:
        """Total cost across models."""
        return self._cost

    @property
    def calls(self) -> int:
        """Recorded calls across models."""
        return self._calls

    def summary(self) -> dict[str, Any]:
        """Totals and per-model totals, with `cost_usd` (Decimal) and `cost` (formatted)."""
        with self._lock:
            models = dict(self._models)
            usage, cost, calls = self._usage, self._cost, self._calls
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
            return dict(self._models)

    def restore(self, models: dict[str, ModelTotals]) -> None:
        """Replace every total with `models` (used when resuming a durable session)."""
        with self._lock:
            self._models = dict(models)
            self._usage = sum((m.usage for m in models.values()), Usage())
            self._cost = sum((m.cost_usd for m in models.values()), _ZERO)
            self._calls = sum(m.calls for m in models.values())
