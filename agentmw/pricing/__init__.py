"""Model pricing: exact per-million-token rates, model matching and the cost of a call.

`ModelPricing` (rates), `PricingTable` (matching rules, a fallback source, price files) and the
process default table with its helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentmw.pricing.files import check_pricing_file, read_pricing_file
from agentmw.pricing.model import ModelPricing
from agentmw.pricing.table import OnConflict, PricingTable

if TYPE_CHECKING:
    from pathlib import Path

    from agentmw.core.call import Call

__all__ = [
    "ModelPricing",
    "PricingTable",
    "call_cost",
    "check_pricing_file",
    "default_pricing",
    "format_cost",
    "has_pricing",
    "load_pricing_from_file",
    "pricing_for",
    "read_pricing_file",
    "register_pricing",
]

_ZERO = Decimal(0)
_CENT = Decimal("0.01")


_default_table = PricingTable()


def default_pricing() -> PricingTable:
    """The process-wide table used by agents without their own `pricing=`."""
    return _default_table


def register_pricing(
    model: str, pricing: ModelPricing | Mapping[str, Any], *, on_conflict: OnConflict = "overwrite"
) -> None:
    """Register `model`'s prices in the process default table (see `PricingTable.register`)."""
    _default_table.register(model, pricing, on_conflict=on_conflict)


def load_pricing_from_file(path: str | Path, *, on_conflict: OnConflict = "overwrite") -> list[str]:
    """Merge a JSON or TOML price file into the default table; returns the models it priced.

    The whole file is validated before anything is merged.
    """
    return _default_table.load_file(path, on_conflict=on_conflict)


def has_pricing(model: str) -> bool:
    """True when the default table prices `model`."""
    return _default_table.has(model)


def pricing_for(model: str) -> ModelPricing | None:
    """The default table's prices for `model`, or None."""
    return _default_table.get(model)


def format_cost(amount: Decimal | float | int) -> str:
    """Money for people: "$0.0042" below one cent, "$1.23" from one cent up."""
    value = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0.00"
    if value >= _CENT:
        return f"{sign}${value.quantize(_CENT):,}"
    small = value.quantize(Decimal("0.0001"))
    if small == 0:  # under 1/100 of a cent: keep two significant digits rather than "$0.0000"
        small = value.quantize(Decimal(1).scaleb(value.adjusted() - 1))
    return f"{sign}${small:f}"


_UNRESOLVED: Any = object()  # `call_cost`: a model not in a table's cache yet


def call_cost(call: Call) -> Decimal:
    """The cost of a finished call, computed once and kept in `call.cost_usd`.

    Uses the session agent's `pricing` table, else the process default; tool calls cost 0.
    """
    cached = call.cost_usd
    if cached is not None:
        return cached
    usage = call.usage
    if usage is None:
        return _ZERO  # not finished yet: nothing to cache
    if call.kind != "turn":
        call.cost_usd = _ZERO
        return _ZERO
    agent = call.agent  # `table_for` inline (the call path)
    table = agent.pricing if agent is not None and agent.pricing is not None else _default_table
    # A subclass may price differently: only the table's own `cost` then. A model already
    # resolved is read from the table's cache here (`PricingTable.get` inline).
    pricing: ModelPricing | None = None
    if type(table) is PricingTable:
        model = call.model
        found = table._resolved.get(model, _UNRESOLVED) if model else None
        pricing = table.get(model) if found is _UNRESOLVED else found
    if pricing is None:  # the table's fallback source, or 0 with its one warning
        cost = call.cost_usd = table.cost(call.model, usage)
        return cost
    cost = call.cost_usd = pricing.cost(usage)
    call.priced = (pricing, cost)  # what the session's compact record keeps (see `Call`)
    return cost


def table_for(call: Call) -> PricingTable:
    """The pricing table that prices `call`: its agent's own, else the process default."""
    agent = call.agent
    return agent.pricing if agent is not None and agent.pricing is not None else _default_table
