"""`backoff_delay`: exponential backoff with the common jitter modes."""

from __future__ import annotations

import math
import random
from typing import Any, Literal

__all__ = ["backoff_delay"]

Jitter = Literal["none", "full", "equal", "decorrelated"]
JITTERS: frozenset[str] = frozenset({"none", "full", "equal", "decorrelated"})


def check_seconds(name: str, value: Any, *, positive: bool = False) -> float:
    """`value` as a float, or `ValueError` naming `name` (bools, NaN, negatives refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def check_jitter(jitter: Any) -> Jitter:
    """`jitter` if it names a mode, else `ValueError` listing the modes."""
    if not isinstance(jitter, str) or jitter not in JITTERS:
        raise ValueError(f"jitter must be one of {', '.join(sorted(JITTERS))}; got {jitter!r}")
    return jitter  # type: ignore[return-value]


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    jitter: str = "full",
    prev: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Modes: `"none"` is `min(cap, base * 2**(attempt - 1))`; `"full"` is uniform in `[0, that]`;
    `"equal"` is half of it plus uniform in `[0, half]`; `"decorrelated"` is
    `min(cap, uniform(base, 3 * (prev or base)))`.

    Args:
        attempt: the number of the attempt that just failed (>= 1).
        base: the first delay in seconds.
        cap: the longest delay in seconds.
        jitter: "none", "full", "equal" or "decorrelated".
        prev: the previous delay (decorrelated jitter only).
        rng: a `random.Random` for reproducible delays (default: the module's generator).

    Raises:
        ValueError: an argument is negative, NaN, a bool, or `jitter` is not a mode.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
    base = check_seconds("base", base)
    cap = check_seconds("cap", cap)
    mode = check_jitter(jitter)
    if prev is not None:
        prev = check_seconds("prev", prev)
    uniform = (rng or random).uniform
    if mode == "decorrelated":
        high = 3.0 * (prev or base)
        return min(cap, uniform(base, max(base, high)))
    # Exponent capped so huge attempt numbers cannot overflow a float.
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 1000)) if base else 0.0
    if mode == "none":
        return ceiling
    if mode == "full":
        return uniform(0.0, ceiling)
    return ceiling / 2.0 + uniform(0.0, ceiling / 2.0)
