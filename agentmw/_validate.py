"""Argument checks shared by every constructor: one wording, one rule for the error type.

A value of the wrong type raises `TypeError`, a value of the right type outside what is allowed
raises `ValueError`; both name the argument and say what it accepts. `bool` is never a number
(it is an `int` subclass, and `retries=True` is always a mistake).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

__all__: list[str] = []  # internal: the layers, stores and rules call these

T = TypeVar("T")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {_shown(value)}"


def is_number(value: Any) -> bool:
    """An int, float or Decimal that is not a bool."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """`value` as an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, {_got(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_optional_int(name: str, value: Any, *, minimum: int | None = None) -> int | None:
    """`check_int`, or None."""
    return None if value is None else check_int(name, value, minimum=minimum)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    finite: bool = True,
) -> float:
    """`value` as a float; `minimum`/`maximum` are inclusive, `above` exclusive.

    NaN is always refused; infinity only when `finite` (the default). `finite=False` is for
    "no limit" values such as a backoff cap or a breaker's recovery timeout.
    """
    if not is_number(value):
        raise TypeError(f"{name} must be a number, {_got(value)}")
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be a {'finite ' if finite else ''}number, got {value!r}")
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
    if above is not None:
        bounds.append(f"> {above:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    if (
        (minimum is not None and number < minimum)
        or (above is not None and number <= above)
        or (maximum is not None and number > maximum)
    ):
        raise ValueError(f"{name} must be a number {' and '.join(bounds)}, got {value!r}")
    return number


def check_optional_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    finite: bool = True,
) -> float | None:
    """`check_number`, or None."""
    if value is None:
        return None
    return check_number(name, value, minimum=minimum, above=above, maximum=maximum, finite=finite)


def check_usd(name: str, value: Any) -> Decimal:
    """An amount of money >= 0 as an exact `Decimal` (floats go through their shortest repr)."""
    if not (is_number(value) or isinstance(value, str)):
        raise TypeError(
            f"{name} must be an amount in USD (int, float, Decimal or str), {_got(value)}"
        )
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a finite amount >= 0, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a finite amount >= 0, got {value!r}")
    return amount


def check_bool(name: str, value: Any) -> bool:
    """`value` when it is True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, {_got(value)}")
    return value


def check_name(name: str, value: Any) -> str:
    """A non-blank string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, {_got(value)}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-blank string, got {value!r}")
    return value


def check_optional_name(name: str, value: Any) -> str | None:
    """`check_name`, or None."""
    return None if value is None else check_name(name, value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of `choices` (strings)."""
    allowed = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(allowed)}; {_got(value)}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_callable(name: str, value: Any, what: str = "a callable") -> Callable[..., Any]:
    """A callable (`what` describes its signature in the message)."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}, {_got(value)}")
    return value  # type: ignore[no-any-return]


def check_optional_callable(
    name: str, value: Any, what: str = "a callable"
) -> Callable[..., Any] | None:
    """`check_callable`, or None."""
    return None if value is None else check_callable(name, value, what)


def check_instance(name: str, value: Any, cls: type[T] | tuple[type, ...], what: str) -> T:
    """An instance of `cls` (`what` names it in the message)."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {what}, {_got(value)}")
    return value  # type: ignore[return-value]


def check_methods(name: str, value: Any, methods: Iterable[str], what: str) -> Any:
    """An object with every method in `methods` (a store, saver, sink or ledger protocol).

    The message lists the missing methods, so `RateLimit(store=object())` fails at construction
    rather than at the first call.
    """
    missing = [m for m in methods if not callable(getattr(value, m, None))]
    if missing:
        raise TypeError(
            f"{name} must be {what} (missing {', '.join(missing)}), got {type(value).__name__}"
        )
    return value


def protocol_methods(protocol: type) -> tuple[str, ...]:
    """The method names a `typing.Protocol` class declares (for `check_methods`)."""
    names = getattr(protocol, "__protocol_attrs__", None)
    if names is None:  # Python < 3.12
        names = {
            n
            for base in protocol.__mro__[:-1]
            for n, v in vars(base).items()
            if callable(v) and not n.startswith("_")
        }
    return tuple(sorted(n for n in names if not n.startswith("_")))


def check_protocol(name: str, value: Any, protocol: type, what: str | None = None) -> Any:
    """An object implementing every method of `protocol`."""
    label = what or f"a {protocol.__name__}"
    return check_methods(name, value, protocol_methods(protocol), label)


def check_clock(name: str, value: Any) -> Callable[[], float] | None:
    """None, or a zero-argument callable returning monotonic seconds."""
    return check_optional_callable(name, value, "a callable returning seconds")


def check_match(name: str, value: Any, pattern: str, what: str) -> str:
    """A string matching the regular expression `pattern` in full (`what` describes it)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {what}, {_got(value)}")
    if re.fullmatch(pattern, value) is None:
        raise ValueError(f"{name} must be {what}, got {_shown(value)}")
    return value


def check_path(name: str, value: Any) -> str:
    """A non-empty file path (`str` or `os.PathLike[str]`), returned as a `str`."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), {_got(value)}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a text file path (str or os.PathLike[str]), {_got(value)}")
    if not path:
        raise ValueError(f"{name} must be a non-empty file path, got {_shown(value)}")
    return path
