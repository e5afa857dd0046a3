"""`Budget`: records what each call cost and stops spending past a limit in USD."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from agentmw._validate import check_bool, check_optional_callable, check_protocol, check_usd
from agentmw.core.call import Call
from agentmw.core.middleware import Middleware
from agentmw.errors import BudgetExceededError
from agentmw.pricing import call_cost, table_for
from agentmw.stores.ledger import InMemoryLedger, Ledger
from agentmw.usage import Usage, estimate_usage

Estimate = Callable[[Call], "Usage | Decimal | float | int | None"]
_EXCEEDED = "agentmw.budget.exceeded"  # + the layer's name: a session's "already announced" flag


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

    order_role = "budget"  # read by the stack's order checks (agentmw.core.order)

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
        self.usd = check_usd("usd", usd)
        self.enforce = check_bool("enforce", enforce)
        self.precheck = check_bool("precheck", precheck)
        self.estimate = check_optional_callable(
            "estimate", estimate, "a callable call -> Usage or a cost in USD"
        )
        self.ledger: Ledger | None = (
            None if ledger is None else check_protocol("ledger", ledger, Ledger)
        )
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
        return check_usd("the estimate's cost", value)

    def _check(self, call: Call, spent: Decimal) -> None:
        """Refuse the call when `spent` (or `spent` + its estimate) is past the budget."""
        if spent > self.usd:
            call.emit("budget.refused", reason="exceeded", spent_usd=str(spent))
            raise BudgetExceededError(self.usd, spent)
        if self.precheck:
            cost = self.estimated_cost(call)
            if spent + cost > self.usd:
                call.emit("budget.refused", reason="precheck", estimate_usd=str(cost))
                raise BudgetExceededError(self.usd, spent, estimate_usd=cost)

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

    def _record(self, call: Call) -> Decimal:
        cost = call_cost(call)
        if self.ledger is not None:
            return self.ledger.add(self.name, cost).total
        if call.session is not None:
            # The session records this call right after the chain returns.
            return call.session.cost_usd + cost
        return self._local.add(self.name, cost).total

    def awaits(self) -> bool:
        # Only a shared ledger with real I/O needs the async hooks on the async path.
        return self.ledger is not None and type(self.ledger) is not InMemoryLedger

    # -- hooks: check before each call, record after it ------------------------------------
    # Only an enforcing budget reads the spend before a call (a shared ledger's read is I/O).
    def before(self, call: Call) -> None:
        if self.enforce:
            self._check(call, self.spent(call))

    async def abefore(self, call: Call) -> None:
        if self.enforce:
            ledger = self.ledger
            spent = await ledger.aspent(self.name) if ledger is not None else self.spent(call)
            self._check(call, spent)

    def after(self, call: Call, result: Any) -> Any:
        self._crossed(call, self._record(call))
        return result

    async def aafter(self, call: Call, result: Any) -> Any:
        ledger = self.ledger
        if ledger is None:
            total = self._record(call)
        else:
            total = (await ledger.aadd(self.name, call_cost(call))).total
        self._crossed(call, total)
        return result
