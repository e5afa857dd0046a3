"""Model pricing: exact per-million-token rates, model matching and the cost of a call."""

from __future__ import annotations

import json
import logging
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentmw.usage import Usage

__all__ = [
    "ModelPricing",
    "PricingTable",
    "call_cost",
    "default_pricing",
    "format_cost",
    "has_pricing",
    "load_pricing_from_file",
    "pricing_for",
    "register_pricing",
]

if TYPE_CHECKING:
    from agentmw.core.call import Call

logger = logging.getLogger("agentmw.pricing")

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
OnConflict = Literal["overwrite", "error", "keep"]

# Suffixes that name a snapshot of the same model: dates, -latest, @version, -v2 / -v2:0, -0613.
_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-v\d+(?::\d+)?|@.+)$")


class ModelPricing(BaseModel):
    """Prices of one model in USD per million tokens (exact `Decimal`s).

    Attributes:
        input_per_million: price of uncached input tokens.
        output_per_million: price of output tokens (reasoning tokens included).
        cache_read_per_million: price of cache reads; None means the input rate.
        cache_write_per_million: price of cache writes; None means the input rate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: Decimal = Field(ge=0, allow_inf_nan=False)
    output_per_million: Decimal = Field(ge=0, allow_inf_nan=False)
    cache_read_per_million: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_write_per_million: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of `usage` at these rates."""
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        uncached = max(usage.input_tokens - read - write, 0)
        read_rate = self.cache_read_per_million
        write_rate = self.cache_write_per_million
        total = (
            uncached * self.input_per_million
            + read * (self.input_per_million if read_rate is None else read_rate)
            + write * (self.input_per_million if write_rate is None else write_rate)
            + usage.output_tokens * self.output_per_million
        )
        return total / _MILLION


def model_candidates(model: str) -> list[str]:
    """The names tried for `model`, in order: exact, without snapshot suffix, without provider."""
    names = [model]
    base = _SUFFIX.sub("", model)
    if base and base != model:
        names.append(base)
    if "/" in model:
        bare = model.rsplit("/", 1)[1]
        names.append(bare)
        stripped = _SUFFIX.sub("", bare)
        if stripped and stripped != bare:
            names.append(stripped)
    return names


Fallback = Callable[[str, Usage], Decimal | None]


class PricingTable:
    """A thread-safe table of model prices (one per agent, or the process default).

    Lookups try the exact name, then the name without a dated or version suffix, then without a
    `provider/` prefix; never a bare prefix (`gpt-4o-mini` never gets `gpt-4o`'s price).

    Args:
        prices: initial entries, model name -> `ModelPricing` (or a mapping of its fields).
        fallback: prices models the table does not know (`from_genai_prices` sets one).
    """

    def __init__(
        self,
        prices: Mapping[str, ModelPricing | Mapping[str, Any]] | None = None,
        *,
        fallback: Fallback | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._prices: dict[str, ModelPricing] = {}
        # model name -> the prices its matching rules resolve to (None: unpriced). Cleared on
        # every registration, so the suffix/prefix rules run once per model, not once per call.
        self._resolved: dict[str, ModelPricing | None] = {}
        self._fallback = fallback
        for model, pricing in (prices or {}).items():
            self.register(model, pricing)

    @classmethod
    def from_genai_prices(
        cls, prices: Mapping[str, ModelPricing | Mapping[str, Any]] | None = None
    ) -> PricingTable:
        """A table that prices models it does not hold with the `genai-prices` package.

        Needs the `[prices]` extra. Registered entries always win over genai-prices.

        Raises:
            ImportError: genai-prices is not installed.
        """
        try:
            import genai_prices
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("from_genai_prices needs: pip install 'agentmw[prices]'") from exc

        def fallback(model: str, usage: Usage) -> Decimal | None:
            gusage = genai_prices.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
            for name in model_candidates(model):
                try:
                    price = genai_prices.calc_price(gusage, name).total_price
                except LookupError:
                    continue
                return Decimal(price)
            return None

        return cls(prices, fallback=fallback)

    def register(
        self,
        model: str,
        pricing: ModelPricing | Mapping[str, Any],
        *,
        on_conflict: OnConflict = "overwrite",
    ) -> None:
        """Set the prices of `model`.

        Raises:
            ValueError: blank model, bad `on_conflict`, or `on_conflict="error"` and it is priced.
        """
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-blank string, got {model!r}")
        if on_conflict not in ("overwrite", "error", "keep"):
            raise ValueError(
                f"on_conflict must be one of overwrite, error, keep; got {on_conflict!r}"
            )
        if not isinstance(pricing, ModelPricing):
            pricing = ModelPricing.model_validate(pricing)
        with self._lock:
            if model in self._prices:
                if on_conflict == "error":
                    raise ValueError(f"model {model!r} already has a price")
                if on_conflict == "keep":
                    return
            self._prices[model] = pricing
            self._resolved = {}

    def update(self, prices: Mapping[str, ModelPricing], *, on_conflict: OnConflict) -> None:
        """Register many models at once: all or nothing (conflicts are checked first)."""
        with self._lock:
            if on_conflict == "error":
                taken = sorted(set(prices) & set(self._prices))
                if taken:
                    raise ValueError(f"models already priced: {', '.join(taken)}")
            for model, pricing in prices.items():
                if on_conflict == "keep" and model in self._prices:
                    continue
                self._prices[model] = pricing
            self._resolved = {}

    def get(self, model: str | None) -> ModelPricing | None:
        """The registered prices that apply to `model` (see the matching rules), or None."""
        if not model:
            return None
        resolved = self._resolved
        try:
            return resolved[model]
        except KeyError:
            pass
        prices = self._prices
        found = next((prices[n] for n in model_candidates(model) if n in prices), None)
        if len(resolved) < 4096:  # bounded: model names can come from callers' kwargs
            resolved[model] = found
        return found

    def has(self, model: str) -> bool:
        """True when `model` has registered prices (the fallback source is not asked)."""
        return self.get(model) is not None

    def models(self) -> list[str]:
        """The registered model names, sorted."""
        with self._lock:
            return sorted(self._prices)

    def cost(self, model: str | None, usage: Usage) -> Decimal:
        """The cost of `usage` on `model`; unknown models cost 0 and warn once per process."""
        pricing = self.get(model)
        if pricing is not None:
            return pricing.cost(usage)
        if model and self._fallback is not None:
            found = self._fallback(model, usage)
            if found is not None:
                return found
        if model and usage.total_tokens:  # a turn with no model named has nothing to look up
            _warn_unknown(model)
        return _ZERO

    def load_file(self, path: str | Path, *, on_conflict: OnConflict = "overwrite") -> list[str]:
        """Merge a JSON or TOML price file (see `load_pricing_from_file`); returns its models."""
        prices = read_pricing_file(path)
        self.update(prices, on_conflict=on_conflict)
        return sorted(prices)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_unknown(model: str) -> None:
    with _warned_lock:
        if model in _warned:
            return
        _warned.add(model)
    logger.warning(
        "no price for model %r: its calls cost 0 (register_pricing or a price file)", model
    )


def _reset_warnings() -> None:
    """Forget which unknown models were warned about (tests)."""
    with _warned_lock:
        _warned.clear()


def read_pricing_file(path: str | Path) -> dict[str, ModelPricing]:
    """Parse and validate a whole price file; nothing is returned unless every entry is valid.

    The file maps model names to tables of `ModelPricing` fields, optionally under a top-level
    `models` key. `.toml` files are TOML, anything else JSON.

    Raises:
        ValueError: unreadable file, bad syntax or an invalid entry; the message names the file,
            the model and the field (every problem, one per line).
    """
    prices, errors = check_pricing_file(path)
    if errors:
        raise ValueError("\n".join(errors))
    return prices


def check_pricing_file(path: str | Path) -> tuple[dict[str, ModelPricing], list[str]]:
    """Validate a price file and collect every problem instead of stopping at the first.

    Returns:
        The valid entries, and one message per problem naming the file, model and field.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return {}, [f"{file}: cannot read price file ({type(exc).__name__})"]
    try:
        data: Any = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{file}: not valid {file.suffix.lstrip('.') or 'JSON'}: {exc}"]
    if isinstance(data, dict) and set(data) == {"models"}:
        data = data["models"]
    if not isinstance(data, dict):
        return {}, [f"{file}: expected a table of model -> prices, got {type(data).__name__}"]
    out: dict[str, ModelPricing] = {}
    errors: list[str] = []
    for model, entry in data.items():
        if not isinstance(entry, dict):
            errors.append(f"{file}: model {model!r}: expected a table of prices")
            continue
        try:
            out[model] = ModelPricing.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "?"
                errors.append(f"{file}: model {model!r}: field {field!r}: {err['msg']}")
    return out, errors


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


def call_cost(call: Call) -> Decimal:
    """The cost of a finished call, computed once and kept in `call.cost_usd`.

    Uses the session agent's `pricing` table, else the process default; tool calls cost 0.
    """
    cached = call.cost_usd
    if cached is not None:
        return cached
    if call.usage is None:
        return _ZERO  # not finished yet: nothing to cache
    cost = table_for(call).cost(call.model, call.usage) if call.kind == "turn" else _ZERO
    call.cost_usd = cost
    return cost


def table_for(call: Call) -> PricingTable:
    """The pricing table that prices `call`: its agent's own, else the process default."""
    agent = call.agent
    return agent.pricing if agent is not None and agent.pricing is not None else _default_table
