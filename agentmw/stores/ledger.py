"""Budget ledgers: where spend is kept when one budget spans sessions (in memory by default).

Besides spend, a ledger holds *reservations*: the worst case of each call in flight, taken
before the call runs (`reserve`) and turned into the real cost afterwards (`settle`) or
dropped (`release`). A reservation is granted only while spend + reservations + it stay within
the limit, atomically, so calls running at the same time cannot all pass one check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

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


class Reservation(NamedTuple):
    """The outcome of `Ledger.reserve`: a call's worst case held against a limit.

    An immutable `NamedTuple` rather than a frozen dataclass: one is built per enforced turn,
    and a tuple is several times cheaper to build.

    Attributes:
        key: the ledger key.
        amount: the amount asked for.
        granted: True when it is held (settle or release it exactly once).
        spent: the spend under the key when the ledger decided.
        reserved: what other reservations held under the key at that moment.
        id: the ledger's handle on the reservation ("" for ledgers that need none).
    """

    key: str
    amount: Decimal
    granted: bool
    spent: Decimal
    reserved: Decimal
    id: str = ""


@runtime_checkable
class Ledger(Protocol):
    """Spend and reservations per key, each check atomic (sync and async).

    `add(key, amount, limit=None)` adds `amount` when `limit` is None or the new total stays within
    `limit`, atomically; otherwise it adds nothing. `reserve(key, amount, limit=)` holds `amount`
    when spend + held reservations + `amount` stay within `limit`; `settle(reservation, cost)`
    drops the hold and adds `cost` in one step (returning the new spend), `release` only drops
    it. The async twins never block the event loop. Fleet ledgers (Redis) implement the same.
    """

    def spent(self, key: str) -> Decimal: ...

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult: ...

    def reserved(self, key: str) -> Decimal: ...

    def reserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation: ...

    def settle(self, reservation: Reservation, cost: Decimal) -> Decimal: ...

    def release(self, reservation: Reservation) -> None: ...

    async def aspent(self, key: str) -> Decimal: ...

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult: ...

    async def areserved(self, key: str) -> Decimal: ...

    async def areserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation: ...

    async def asettle(self, reservation: Reservation, cost: Decimal) -> Decimal: ...

    async def arelease(self, reservation: Reservation) -> None: ...


def _check_amount(name: str, amount: object) -> Decimal:
    """`amount` when it is a `Decimal` (ledgers take exact money only)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(amount).__name__}")
    return amount


class InMemoryLedger:
    """A process-local ledger: share one instance to give many sessions a single budget.

    Every operation takes one short lock (never held across an await or a call), so threads
    and tasks sharing the instance see each other's reservations.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, Decimal] = {}
        self._held: dict[str, Decimal] = {}

    def spent(self, key: str) -> Decimal:
        """The amount spent under `key`."""
        return self._spent.get(key, _ZERO)

    def reserved(self, key: str) -> Decimal:
        """The amount held by reservations in flight under `key`."""
        return self._held.get(key, _ZERO)

    def add(self, key: str, amount: Decimal, *, limit: Decimal | None = None) -> LedgerResult:
        """Add `amount` under `key` unless that would take the total past `limit`."""
        _check_amount("amount", amount)
        with self._lock:
            total = self._spent.get(key, _ZERO) + amount
            if limit is not None and total > limit:
                return LedgerResult(False, total - amount)
            self._spent[key] = total
            return LedgerResult(True, total)

    def reserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation:
        """Hold `amount` under `key` unless spend + reservations + `amount` would pass `limit`."""
        if type(amount) is not Decimal or type(limit) is not Decimal:
            _check_amount("amount", amount)
            _check_amount("limit", limit)
        with self._lock:
            spent = self._spent.get(key, _ZERO)
            held = self._held.get(key, _ZERO)
            if spent + held + amount > limit:
                return Reservation(key, amount, False, spent, held)
            self._held[key] = held + amount
        return Reservation(key, amount, True, spent, held)

    def settle(self, reservation: Reservation, cost: Decimal) -> Decimal:
        """Drop `reservation`'s hold and add `cost` in one step; returns the new spend."""
        if type(cost) is not Decimal:
            _check_amount("cost", cost)
        key = reservation.key
        with self._lock:
            if reservation.granted:
                self._held[key] = self._held.get(key, _ZERO) - reservation.amount
            total = self._spent[key] = self._spent.get(key, _ZERO) + cost
        return total

    def release(self, reservation: Reservation) -> None:
        """Drop `reservation`'s hold without spending (the call failed or was cancelled)."""
        if not reservation.granted:
            return
        key = reservation.key
        with self._lock:
            self._held[key] = self._held.get(key, _ZERO) - reservation.amount

    # The lock is only ever held for a few dictionary operations: the twins run inline.
    async def aspent(self, key: str) -> Decimal:
        """Async twin of `spent`."""
        return self.spent(key)

    async def aadd(
        self, key: str, amount: Decimal, *, limit: Decimal | None = None
    ) -> LedgerResult:
        """Async twin of `add`."""
        return self.add(key, amount, limit=limit)

    async def areserved(self, key: str) -> Decimal:
        """Async twin of `reserved`."""
        return self.reserved(key)

    async def areserve(self, key: str, amount: Decimal, *, limit: Decimal) -> Reservation:
        """Async twin of `reserve`."""
        return self.reserve(key, amount, limit=limit)

    async def asettle(self, reservation: Reservation, cost: Decimal) -> Decimal:
        """Async twin of `settle`."""
        return self.settle(reservation, cost)

    async def arelease(self, reservation: Reservation) -> None:
        """Async twin of `release`."""
        self.release(reservation)

    def reset(self, key: str | None = None) -> None:
        """Forget the spend and reservations of `key` (every key when None)."""
        with self._lock:
            if key is None:
                self._spent.clear()
                self._held.clear()
            else:
                self._spent.pop(key, None)
                self._held.pop(key, None)
