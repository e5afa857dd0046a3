"""`PricingTable`: thread-safe model prices with suffix/provider matching and a fallback source."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from agentmw._validate import check_optional_callable
from agentmw.pricing.files import read_pricing_file
from agentmw.pricing.model import ModelPricing, model_candidates
from agentmw.usage import ZERO_USAGE, Usage

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PricingTable"]


_ZERO = Decimal(0)
OnConflict = Literal["overwrite", "error", "keep"]
Fallback = Callable[[str, Usage], Decimal | None]


class PricingTable:
    """A thread-safe table of model prices (one per agent, or the process default).

    Lookups try the exact name, then the name without a dated or version suffix, then without a
    `provider/` prefix; never a bare prefix (`gpt-4o-mini` never gets `gpt-4o`'s price). When
    none of those is registered, the same names are tried ignoring case ("GPT-4o" finds
    "gpt-4o"); an exact registration always wins over a case-insensitive one.

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
        self._folded: dict[str, str] = {}  # lower-cased name -> the registered name
        # model name -> the prices its matching rules resolve to (None: unpriced). Cleared on
        # every registration, so the suffix/prefix rules run once per model, not once per call.
        self._resolved: dict[str, ModelPricing | None] = {}
        if prices is not None and not isinstance(prices, Mapping):
            kind = type(prices).__name__
            raise TypeError(f"prices must be a mapping of model -> ModelPricing, got {kind}")
        check_optional_callable("fallback", fallback, "(model, usage) -> cost")
        self._fallback = fallback
        for model, pricing in (prices or {}).items():
            try:
                self.register(model, pricing)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"prices[{model!r}]: {exc}") from None

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
        if isinstance(pricing, Mapping):
            pricing = ModelPricing.from_dict(pricing)
        elif not isinstance(pricing, ModelPricing):
            raise TypeError(
                f"pricing must be a ModelPricing or a mapping of its fields, "
                f"got {type(pricing).__name__}"
            )
        with self._lock:
            if model in self._prices:
                if on_conflict == "error":
                    raise ValueError(f"model {model!r} already has a price")
                if on_conflict == "keep":
                    return
            self._prices[model] = pricing
            self._folded.setdefault(model.lower(), model)
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
                self._folded.setdefault(model.lower(), model)
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
        if found is None:  # then ignoring case: "GPT-4o" is "gpt-4o"
            folded = self._folded
            names = model_candidates(model.lower())
            found = next((prices[folded[n]] for n in names if folded.get(n) in prices), None)
        if len(resolved) < 4096:  # bounded: model names can come from callers' kwargs
            resolved[model] = found
        return found

    def has(self, model: str) -> bool:
        """True when `model` has registered prices (the fallback source is not asked)."""
        return self.get(model) is not None

    def priced(self, model: str | None) -> bool:
        """True when the table can price `model`: registered prices, or its fallback source.

        This is the question an enforced `Budget` asks before a turn (fail-closed pricing).
        """
        if not model:
            return False
        if self.get(model) is not None:
            return True
        fallback = self._fallback
        return fallback is not None and fallback(model, ZERO_USAGE) is not None

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
    import logging  # on the first unpriced model: `import agentmw` does not load logging

    logging.getLogger("agentmw.pricing").warning(
        "no price for model %r: its calls cost 0 (register_pricing or a price file)", model
    )


def _reset_warnings() -> None:
    """Forget which unknown models were warned about (tests)."""
    with _warned_lock:
        _warned.clear()
