"""`backoff_delay`: exponential backoff with the common jitter modes."""

from __future__ import annotations

import random
from typing import Literal

from agentmw._validate import check_choice, check_int, check_number, check_optional_number

__all__ = ["backoff_delay"]

Jitter = Literal["none", "full", "equal", "decorrelated"]
JITTERS = ("none", "full", "equal", "decorrelated")


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
        TypeError: an argument has the wrong type (a bool is not a number).
        ValueError: an argument is negative or NaN, or `jitter` is not a mode.
    """
    check_int("attempt", attempt, minimum=1)
    base = check_number("base", base, minimum=0, finite=False)
    cap = check_number("cap", cap, minimum=0, finite=False)
    mode = check_choice("jitter", jitter, JITTERS)
    prev = check_optional_number("prev", prev, minimum=0, finite=False)
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
