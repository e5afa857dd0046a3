"""`Budget`: records what each call cost and stops spending past a limit in USD."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, Middleware
from agentmw.errors import BudgetExceededError
from agentmw.pricing import call_cost, table_for
from agentmw.stores.ledger import InMemoryLedger, Ledger
from agentmw.usage import Usage, estimate_usage

Estimate = Callable[[Call], "Usage | Decimal | float | int | None"]
_ZERO = Decimal(0)


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise TypeError(f"usd must be a number, got {type(value).__name__}")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"usd must be a finite number >= 0, got {value!r}") from None
    if not amount.is_finite() or amount < 0 or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"usd must be a finite number >= 0, got {value!r}")
    return amount


class Budget(Middleware):
    """Tracks spend in USD against `usd`; with `enforce`, refuses calls once it is exceeded.

    Each successful call's cost (`call_cost`) goes to the ledger; the first call that takes the
    spend past `usd` emits `budget.exceeded` (once per session, or once per shared ledger).

    Args:
        usd: the budget, a finite number >= 0 (kept as an exact `Decimal`).
        enforce: refuse calls with `BudgetExceededError` once the budget is exceeded.
        precheck: with `enforce`, also refuse a call whose estimated cost would exceed it.
        estimate: call -> `Usage` or a cost in USD; default: prompt characters / 4 in and
            `max_tokens` out, priced like the call.
        ledger: where spend is kept: the session's ledger (default) or a shared `Ledger` such as
            `InMemoryLedger` (one budget across sessions), keyed by the layer's name.
    """

    def __init__(
        self,
        usd: float | Decimal | int | str,
        *,
        enforce: bool = False,
        precheck: bool = True,
        estimate: Estimate | None = None,
        ledger: Ledger | None = None,
        name: str | None = None,
        kinds: Any = "turn",
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.usd = _usd(usd)
        if estimate is not None and not callable(estimate):
            raise TypeError(f"estimate must be a callable call -> Usage, got {type(estimate)}")
        if ledger is not None and not isinstance(ledger, Ledger):
            raise TypeError(f"ledger must implement the Ledger protocol, got {type(ledger)}")
        self.enforce = bool(enforce)
        self.precheck = bool(precheck)
        self.estimate = estimate
        self.ledger = ledger
        self._local = InMemoryLedger()  # calls outside any session
        self._lock = threading.Lock()
        self._shared_exceeded = False

    # -- decisions (pure, shared by every path) --------------------------------------------
    def estimated_cost(self, call: Call) -> Decimal:
        """The cost the precheck expects `call` to have."""
        value = self.estimate(call) if self.estimate is not None else None
        if value is None:
            value = call.estimate
            if value is None:
                # `call.estimate` is the call's shared estimate: RateLimit below reuses it.
                value = call.estimate = estimate_usage(call.args, call.kwargs)
        if isinstance(value, Usage):
            return table_for(call).cost(call.model, value)
        return _usd(value)

    def _check(self, call: Call, spent: Decimal) -> None:
        if not self.enforce:
            return
        if spent > self.usd:
            call.emit("budget.refused", reason="exceeded", spent_usd=str(spent))
            raise BudgetExceededError(self.usd, spent)
        if self.precheck:
            cost = self.estimated_cost(call)
            if spent + cost > self.usd:
                call.emit("budget.refused", reason="precheck", estimate_usd=str(cost))
                raise BudgetExceededError(self.usd, spent, estimate_usd=cost)

    def _first_crossing(self, call: Call, total: Decimal) -> bool:
        if total <= self.usd:
            return False
        session = call.session
        with self._lock:
            if self.ledger is not None or session is None:
                first, self._shared_exceeded = not self._shared_exceeded, True
                return first
            flag = f"budget:{self.name}:exceeded"
            first = flag not in session.meta
            session.meta[flag] = True
            return first

    def _crossed(self, call: Call, total: Decimal) -> None:
        if self._first_crossing(call, total):
            call.emit("budget.exceeded", budget_usd=str(self.usd), spent_usd=str(total))

    # -- ledger access ---------------------------------------------------------------------
    def spent(self, call: Call | None = None) -> Decimal:
        """What has been spent against this budget (for `call`'s session when it has one)."""
        if self.ledger is not None:
            return self.ledger.spent(self.name)
        if call is not None and call.session is not None:
            return call.session.cost_usd
        return self._local.spent(self.name)

    def _record(self, call: Call) -> Decimal:
        cost = call_cost(call)
        if self.ledger is not None:
            return self.ledger.add(self.name, cost).total
        if call.session is not None:
            # The session records this call right after the chain returns.
            return call.session.cost_usd + cost
        return self._local.add(self.name, cost).total

    # -- hooks (sync and stream paths) ------------------------------------------------------
    def before(self, call: Call) -> None:
        self._check(call, self.spent(call))

    def after(self, call: Call, result: Any) -> Any:
        self._crossed(call, self._record(call))
        return result

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        ledger = self.ledger
        spent = await ledger.aspent(self.name) if ledger is not None else self.spent(call)
        self._check(call, spent)
        result = await call_next(call)
        if ledger is not None:
            total = (await ledger.aadd(self.name, call_cost(call))).total
        else:
            total = self._record(call)
        self._crossed(call, total)
        return result
