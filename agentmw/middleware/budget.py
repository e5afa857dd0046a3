"""`Budget`: records what each call cost and stops spending past a limit in USD.

An enforced budget is a hard cap: before a turn runs it reserves the turn's worst case
(`estimated_cost`) against `usd - spent - reserved`, atomically in its ledger, so calls running at
the same time (threads, tasks, sessions or processes sharing the ledger) cannot all pass one
check; after the turn the hold becomes the real cost (`settle`), or is dropped when the turn
fails or is cancelled (`release`). It also fails closed on models without a price.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, cast

from agentmw._validate import (
    check_bool,
    check_choice,
    check_optional_callable,
    check_protocol,
    check_usd,
)
from agentmw.core.call import Call
from agentmw.core.chain import derived_link
from agentmw.core.middleware import PATHS, Middleware, overrides
from agentmw.errors import BudgetExceededError, PricingMissingError
from agentmw.events import Event
from agentmw.pricing import call_cost, table_for
from agentmw.stores.ledger import InMemoryLedger, Ledger, Reservation
from agentmw.usage import Usage, estimate_usage

Estimate = Callable[[Call], "Usage | Decimal | float | int | None"]
Unpriced = Literal["refuse", "allow"]
_EXCEEDED = "agentmw.budget.exceeded"  # + the layer's name: a session's "already announced" flag
_BOOK = "agentmw.budget.book"  # + the layer's name: a session's spend and holds of this layer
_HOLD = "agentmw.budget.hold"  # + the layer's name: the call's reservation (call.meta)
_ZERO = Decimal(0)
_SWITCHES = frozenset({"policy.model_switched", "fallback.switched"})


class Budget(Middleware):
    """Tracks spend in USD against `usd`; with `enforce`, a hard cap on it.

    Each successful call's cost (`call_cost`) goes to the ledger; the first call that takes the
    spend past `usd` emits `budget.exceeded` (once per session, or once per shared ledger).

    With `enforce` (and `precheck`, the default), each turn reserves its worst case before it
    runs: the priced input estimate plus `max_tokens` / `max_completion_tokens` /
    `max_output_tokens` at the output price, or `max_call_usd` when the call sets no maximum.
    A turn whose reservation would take spend + reservations in flight past `usd` is refused
    with `BudgetExceededError`; so with a maximum on every call, spend never passes `usd`. A
    call with neither a maximum nor `max_call_usd` reserves only its input estimate, and spend
    can pass `usd` by what the calls in flight generate.

    An enforced budget also fails closed: a turn whose model has no price (in the agent's
    table or the process default, or its fallback source) raises `PricingMissingError` before
    it runs, as does a `switch_model` (policy) or fallback to such a model, unless
    `unpriced="allow"`. A budget that does not enforce prices such a turn at $0 and logs one
    warning per model.

    Args:
        usd: the budget, a finite number >= 0 (kept as an exact `Decimal`).
        enforce: refuse calls that the budget cannot cover (see above).
        precheck: with `enforce`, reserve each turn's worst case first (the hard cap); False
            refuses only once the spend is past `usd`.
        estimate: call -> `Usage` or a cost in USD, the worst case to reserve; default: prompt
            characters / 4 in and the call's output maximum out, priced like the call.
        max_call_usd: the worst case of a call that sets no output maximum (None: its input
            estimate only).
        unpriced: "refuse" (default) or "allow" turns on models without a price when enforced.
        ledger: where spend is kept: the session's ledger (default) or a shared `Ledger` such as
            `InMemoryLedger` or `RedisLedger` (one budget across sessions or processes), keyed
            by the layer's name.
    """

    order_role = "budget"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        usd: float | Decimal | int | str,
        *,
        enforce: bool = False,
        precheck: bool = True,
        estimate: Estimate | None = None,
        max_call_usd: float | Decimal | int | str | None = None,
        unpriced: Unpriced = "refuse",
        ledger: Ledger | None = None,
        name: str | None = None,
        kinds: Any = "turn",
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.usd = check_usd("usd", usd)
        self.enforce = check_bool("enforce", enforce)
        self.precheck = check_bool("precheck", precheck)
        self.estimate = check_optional_callable(
            "estimate", estimate, "a callable call -> Usage or a cost in USD"
        )
        self.max_call_usd = (
            None if max_call_usd is None else check_usd("max_call_usd", max_call_usd)
        )
        self.unpriced = cast(Unpriced, check_choice("unpriced", unpriced, ("refuse", "allow")))
        self.ledger: Ledger | None = (
            None if ledger is None else check_protocol("ledger", ledger, Ledger)
        )
        self._local = InMemoryLedger()  # calls outside any session
        self._lock = threading.Lock()
        self._shared_exceeded = False
        self._hold = f"{_HOLD}:{self.name}"
        self._watching = f"{_HOLD}:{self.name}:watch"
        self._book_key = f"{_BOOK}:{self.name}"

    # -- decisions (pure, shared by every path) --------------------------------------------
    def estimated_cost(self, call: Call) -> Decimal:
        """The worst case `call` reserves: its estimate priced, or `max_call_usd` (see above)."""
        value = self.estimate(call) if self.estimate is not None else None
        if value is None:
            value = call.estimate
            if value is None:
                # `call.estimate` is the call's shared estimate: RateLimit below reuses it.
                value = call.estimate = estimate_usage(call.args, call.kwargs)
            if not value.output_tokens and self.max_call_usd is not None:
                return self.max_call_usd
        if isinstance(value, Usage):
            return table_for(call).cost(call.model, value)
        return check_usd("the estimate's cost", value)

    def require_price(self, call: Call) -> None:
        """Refuse a turn whose model has no price (fail-closed pricing of an enforced budget)."""
        if call.kind != "turn" or self.unpriced == "allow":
            return
        if not table_for(call).priced(call.model):
            call.emit("budget.refused", reason="unpriced")
            raise PricingMissingError(call.model)

    def _check(self, call: Call, spent: Decimal) -> None:
        """`precheck=False`: refuse the call when `spent` is past the budget."""
        if spent > self.usd:
            call.emit("budget.refused", reason="exceeded", spent_usd=str(spent))
            raise BudgetExceededError(self.usd, spent)

    def _refused(self, call: Call, held: Reservation, spent: Decimal) -> BudgetExceededError:
        reason = "exceeded" if spent > self.usd else "precheck"
        call.emit(
            "budget.refused",
            reason=reason,
            spent_usd=str(spent),
            reserved_usd=str(held.reserved),
            estimate_usd=str(held.amount),
        )
        return BudgetExceededError(
            self.usd, spent, reserved_usd=held.reserved, estimate_usd=held.amount
        )

    def _watch(self, call: Call) -> None:
        """Re-check the price when a layer below switches the call's model before it runs."""

        def switched(event: Event) -> None:
            if event.name in _SWITCHES:
                self.require_price(call)

        watching = call.meta[self._watching] = switched
        if call.observers is None:
            call.observers = [watching]
        else:
            call.observers.append(watching)

    def _unwatch(self, call: Call) -> Reservation | None:
        watching = call.meta.pop(self._watching, None)
        if watching is not None and call.observers is not None and watching in call.observers:
            call.observers.remove(watching)
        held: Reservation | None = call.meta.pop(self._hold, None)
        return held

    def _first_crossing(self, call: Call) -> bool:
        session = call.session
        with self._lock:
            if self.ledger is not None or session is None:
                first, self._shared_exceeded = not self._shared_exceeded, True
                return first
            flag = f"{_EXCEEDED}:{self.name}"
            first = flag not in session.meta
            session.meta[flag] = True
            return first

    def _crossed(self, call: Call, total: Decimal) -> None:
        if total > self.usd and self._first_crossing(call):
            call.emit("budget.exceeded", budget_usd=str(self.usd), spent_usd=str(total))

    # -- ledger access (a shared ledger is the only I/O: the async hooks await its twins) ----
    def spent(self, call: Call | None = None) -> Decimal:
        """What has been spent against this budget (for `call`'s session when it has one)."""
        if self.ledger is not None:
            return self.ledger.spent(self.name)
        if call is not None and call.session is not None:
            return call.session.cost_usd
        return self._local.spent(self.name)

    def _book(self, call: Call) -> Ledger:
        """Where `call`'s holds go: the shared ledger, the session's book, or this layer's own."""
        if self.ledger is not None:
            return self.ledger
        session = call.session
        if session is None:
            return self._local
        key = self._book_key
        book: InMemoryLedger | None = session.meta.get(key)
        if book is None:
            with self._lock:
                book = session.meta.setdefault(key, InMemoryLedger())
        return book

    def _limit(self, call: Call, book: Ledger) -> tuple[Decimal, Decimal]:
        """The limit a session's book reserves against, and what it adds to the book's spend.

        A session's book counts what this layer settled; the session may also hold spend this
        layer never saw (replayed steps, calls under another stack): that comes off the limit.
        """
        session = call.session
        if self.ledger is not None or session is None:
            return self.usd, _ZERO
        recorded, settled = session.cost_usd, book.spent(self.name)
        if recorded > settled:
            return self.usd - (recorded - settled), recorded - settled
        return self.usd, _ZERO

    def _reserve(self, call: Call) -> tuple[Ledger, Decimal, Decimal]:
        self.require_price(call)
        book = self._book(call)
        limit, extra = self._limit(call, book)
        return book, limit, extra

    def _record(self, call: Call) -> Decimal:
        cost = call_cost(call)
        if self.ledger is not None:
            return self.ledger.add(self.name, cost).total
        if call.session is not None:
            # The session records this call right after the chain returns.
            return call.session.ledger.cost_usd + cost
        return self._local.add(self.name, cost).total

    def awaits(self) -> bool:
        # Only a shared ledger with real I/O needs the async hooks on the async path.
        return self.ledger is not None and type(self.ledger) is not InMemoryLedger

    # -- the compiled link: a budget that does not enforce only records -------------------
    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        # Not enforcing, `before` and `on_error` do nothing: the link calls on and records
        # (`after`); an enforcing budget, or a shared ledger with I/O, takes the hooks.
        if (
            mode not in ("sync", "async")
            or (mode == "async" and self.awaits())
            or any(overrides(self, m, Budget) for m in PATHS)
        ):
            return None
        slow = derived_link(self, mode, call_next)
        after = self.after
        if mode == "sync":

            def budget(call: Call) -> Any:
                if self.enforce:
                    return slow(call)
                result = call_next(call)
                session = call.session
                if session is None or self.ledger is not None:
                    return after(call, result)
                # `after` inline for a session's call: `_record`, then `_crossed` past the limit.
                total = session.ledger.cost_usd + call_cost(call)
                if total > self.usd:
                    self._crossed(call, total)
                return result

            return budget

        async def abudget(call: Call) -> Any:
            if self.enforce:
                return await slow(call)
            result = await call_next(call)
            session = call.session
            if session is None or self.ledger is not None:
                return after(call, result)
            total = session.ledger.cost_usd + call_cost(call)  # as in the sync link
            if total > self.usd:
                self._crossed(call, total)
            return result

        return abudget

    # -- hooks: reserve before each call, settle after it, release on failure ---------------
    # Only an enforcing budget does anything before a call (a shared ledger's read is I/O).
    def before(self, call: Call) -> None:
        if not self.enforce:
            return
        if not self.precheck:
            self.require_price(call)
            self._check(call, self.spent(call))
            return
        book, limit, extra = self._reserve(call)
        held = book.reserve(self.name, self.estimated_cost(call), limit=limit)
        if not held.granted:
            raise self._refused(call, held, held.spent + extra)
        call.meta[self._hold] = held
        self._watch(call)

    async def abefore(self, call: Call) -> None:
        if not self.enforce:
            return
        ledger = self.ledger
        if not self.precheck:
            self.require_price(call)
            spent = await ledger.aspent(self.name) if ledger is not None else self.spent(call)
            self._check(call, spent)
            return
        book, limit, extra = self._reserve(call)
        held = await book.areserve(self.name, self.estimated_cost(call), limit=limit)
        if not held.granted:
            raise self._refused(call, held, held.spent + extra)
        call.meta[self._hold] = held
        self._watch(call)

    def after(self, call: Call, result: Any) -> Any:
        held = self._unwatch(call) if self.enforce else None
        if held is None:
            total = self._record(call)
        else:
            total = self._book(call).settle(held, call_cost(call))
        self._crossed(call, total)
        return result

    async def aafter(self, call: Call, result: Any) -> Any:
        held = self._unwatch(call) if self.enforce else None
        if held is not None:
            total = await self._book(call).asettle(held, call_cost(call))
        elif self.ledger is not None:
            total = (await self.ledger.aadd(self.name, call_cost(call))).total
        else:
            total = self._record(call)
        self._crossed(call, total)
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        held = self._unwatch(call) if self.enforce else None
        if held is not None:
            self._book(call).release(held)

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        held = self._unwatch(call) if self.enforce else None
        if held is not None:
            # Shielded: a cancelled call (the usual reason to be here) still drops its hold,
            # even when the task is cancelled again while the ledger answers.
            await asyncio.shield(self._book(call).arelease(held))
