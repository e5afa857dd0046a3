"""Budget ledgers: where spend is kept when one budget spans sessions (in memory by default)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """The outcome of a check-and-add.

    Attributes:
        added: True when the amount was added.
        total: the amount spent under the key after the operation.
    """

    added: bool
    total: Decimal


@runtime_checkable
class Ledger(Protocol):
    """Spend per key, with an atomic check-and-add (sync and async).

    `add(key, amount, limit=None)` adds `amount` when `limit` is None or the new total stays within
    `limit`, atomically; otherwise it adds nothing. Fleet ledgers (Redis) implement the same.
    """

    def spent(self, key: str) -> Decimal: ...

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult: ...

    async def aspent(self, key: str) -> Decimal: ...

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult: ...


class InMemoryLedger:
    """A process-local ledger: share one instance to give many sessions a single budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, Decimal] = {}

    def spent(self, key: str) -> Decimal:
        """The amount spent under `key`."""
        return self._spent.get(key, _ZERO)

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult:
        """Add `amount` under `key` unless that would take the total past `limit`."""
        if not isinstance(amount, Decimal):
            raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
        with self._lock:
            total = self._spent.get(key, _ZERO) + amount
            if limit is not None and total > limit:
                return LedgerResult(False, total - amount)
            self._spent[key] = total
            return LedgerResult(True, total)

    async def aspent(self, key: str) -> Decimal:
        """Async twin of `spent`."""
        return self.spent(key)

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult:
        """Async twin of `add`."""
        return self.add(key, amount, limit=limit)

    def reset(self, key: str | None = None) -> None:
        """Forget the spend of `key` (every key when None)."""
        with self._lock:
            if key is None:
                self._spent.clear()
            else:
                self._spent.pop(key, None)
