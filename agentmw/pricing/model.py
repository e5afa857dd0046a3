"""`ModelPricing`: one model's exact per-million-token rates, validated like a price file entry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from agentmw.usage import Usage

__all__ = ["ModelPricing"]

_MILLION = Decimal(1_000_000)
REQUIRED = ("input_per_million", "output_per_million")
OPTIONAL = ("cache_read_per_million", "cache_write_per_million")
FIELDS = REQUIRED + OPTIONAL

# Suffixes that name a snapshot of the same model: dates, -latest, @version, -v2 / -v2:0, -0613.
_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-v\d+(?::\d+)?|@.+)$")


def rate_problem(value: Any) -> str | None:
    """Why `value` is not a price in USD per million tokens, or None when it is one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        kind = type(value).__name__
        return f"must be a number >= 0 (int, float, Decimal or numeric str), got {kind}"
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return f"must be a number >= 0, got {value!r}"
    if not amount.is_finite() or amount < 0:
        return f"must be a finite number >= 0, got {value!r}"
    return None


def _rate(value: Any) -> Decimal:
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


Rate = Decimal | float | int | str


@dataclass(frozen=True, slots=True, init=False)
class ModelPricing:
    """Prices of one model in USD per million tokens (exact `Decimal`s).

    Rates may be given as int, float, `Decimal` or a numeric string; each must be finite and
    >= 0. A bad rate raises `ValueError` (`TypeError` for a non-number) whose message names the
    field, the value and the rule, exactly as a price file entry would be reported.

    Attributes:
        input_per_million: price of uncached input tokens.
        output_per_million: price of output tokens (reasoning tokens included).
        cache_read_per_million: price of cache reads; None means the input rate.
        cache_write_per_million: price of cache writes; None means the input rate.
    """

    input_per_million: Decimal
    output_per_million: Decimal
    cache_read_per_million: Decimal | None
    cache_write_per_million: Decimal | None
    # Whether `cost` may leave out a cache term with no tokens and get the same `Decimal`
    # (value and exponent): the term's rate has no more decimal places than the input rate, so
    # adding its zero after the input term would change nothing.
    _skip_zero: tuple[bool, bool] = field(
        default=(False, False), init=False, repr=False, compare=False
    )

    def __init__(
        self,
        input_per_million: Rate,
        output_per_million: Rate,
        cache_read_per_million: Rate | None = None,
        cache_write_per_million: Rate | None = None,
    ) -> None:
        given: tuple[Rate | None, ...] = (
            input_per_million,
            output_per_million,
            cache_read_per_million,
            cache_write_per_million,
        )
        for name, value in zip(FIELDS, given, strict=True):
            if value is None and name in OPTIONAL:
                object.__setattr__(self, name, None)
                continue
            if not (type(value) is Decimal and value.is_finite() and value >= 0):
                problem = rate_problem(value)
                if problem is not None:
                    kind = (
                        TypeError if problem.startswith("must be a number >= 0 (") else ValueError
                    )
                    raise kind(f"field {name!r}: {problem}")
            object.__setattr__(self, name, _rate(value))
        floor = int(self.input_per_million.as_tuple().exponent)
        skip = tuple(
            rate is None or int(rate.as_tuple().exponent) >= floor
            for rate in (self.cache_read_per_million, self.cache_write_per_million)
        )
        object.__setattr__(self, "_skip_zero", skip)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelPricing:
        """Build from a mapping of the fields (a price file entry); unknown keys are refused.

        Raises:
            ValueError: a missing, unknown or invalid field (every problem, one per line).
        """
        problems = entry_problems(data)
        if problems:
            raise ValueError("\n".join(problems))
        return cls(**{k: data[k] for k in FIELDS if k in data})

    def as_dict(self) -> dict[str, str | None]:
        """The rates as strings (exact), None for unset cache rates."""
        return {k: None if getattr(self, k) is None else str(getattr(self, k)) for k in FIELDS}

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of `usage` at these rates."""
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        uncached = usage.input_tokens - read - write
        if uncached < 0:  # `max` inline (the call path)
            uncached = 0
        skip_read, skip_write = self._skip_zero
        # The terms in their order; a zero cache term left out where that changes nothing.
        total = uncached * self.input_per_million
        if read or not skip_read:
            rate = self.cache_read_per_million
            total += read * (self.input_per_million if rate is None else rate)
        if write or not skip_write:
            rate = self.cache_write_per_million
            total += write * (self.input_per_million if rate is None else rate)
        return (total + usage.output_tokens * self.output_per_million) / _MILLION


def entry_problems(data: Any) -> list[str]:
    """Every problem of one price entry, each as `field 'x': ...` (empty: valid)."""
    if not isinstance(data, Mapping):
        return [f"expected a table of prices, got {type(data).__name__}"]
    problems = [
        f"field {k!r}: unknown field; allowed: {', '.join(FIELDS)}" for k in data if k not in FIELDS
    ]
    problems += [f"field {k!r}: is required" for k in REQUIRED if k not in data]
    for name in FIELDS:
        if name in data and not (data[name] is None and name in OPTIONAL):
            problem = rate_problem(data[name])
            if problem is not None:
                problems.append(f"field {name!r}: {problem}")
    return problems


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
