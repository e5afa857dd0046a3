"""GCRA (the generic cell rate algorithm): pure, lock-protected rate decisions, no sleeping.

Each (key, dimension) keeps one number, its theoretical arrival time (TAT). A demand of `n` units
at a rate of `r` units/s with a burst capacity `B` is admitted at `now` when
`max(TAT, now) + n/r - B/r <= now`; admitting moves TAT to `max(TAT, now) + n/r`. So over any
window of `w` seconds at most `r·w + B` units are admitted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Internal decision object of RateLimit and the limiter stores; not public API.
__all__: list[str] = []

# Float noise below this is not worth a sleep.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Rate:
    """One limited dimension: `per_second` units refill, at most `burst` units at once.

    Attributes:
        dimension: its name ("rpm", "tpm", "input_tpm", "output_tpm").
        per_second: sustained units per second.
        burst: the most units admitted at once (the bucket's capacity).
    """

    dimension: str
    per_second: float
    burst: float
    # Rates key the refunds waiting per dimension: hashed once, not on every lookup.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.dimension, self.per_second, self.burst)))

    def __hash__(self) -> int:
        return self._hash


Demand = tuple[Rate, float]


def merge_demands(groups: Iterable[Sequence[Demand]]) -> list[Demand]:
    """Sum the costs of several demands per rate (the wait for a queue plus one more caller)."""
    totals: dict[Rate, float] = {}
    for group in groups:
        for rate, cost in group:
            totals[rate] = totals.get(rate, 0.0) + cost
    return list(totals.items())


class GCRA:
    """Rate decisions for many keys; every method is atomic and never blocks beyond its lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[tuple[str, str], float] = {}
        self._cooldown: dict[str, float] = {}

    def _wait(self, key: str, demands: Sequence[Demand], now: float) -> tuple[float, list[float]]:
        # In TAT terms: admitting `cost` moves the theoretical arrival time by cost / rate, and
        # is allowed once that time is no further than `burst` units ahead of now.
        tat_of = self._tat.get
        cooldown = self._cooldown.get(key)
        wait = cooldown - now if cooldown is not None else 0.0
        tats = []
        for rate, cost in demands:
            per_second = rate.per_second
            tat = tat_of((key, rate.dimension), now)
            if tat < now:
                tat = now
            tat += cost / per_second
            ahead = tat - rate.burst / per_second - now
            if ahead > wait:
                wait = ahead
            tats.append(tat)
        return (wait if wait > _EPSILON else 0.0), tats

    def wait_time(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Seconds until `demands` could be admitted (0: now); records nothing."""
        with self._lock:
            return self._wait(key, demands, now)[0]

    def acquire(self, key: str, demands: Sequence[Demand], now: float) -> float:
        """Admit every demand or none: 0.0 means admitted and recorded, else seconds to wait."""
        # acquire/release rather than `with`: this is every uncontended call's hot path, and
        # the context-manager protocol costs more than the decision itself.
        lock = self._lock
        lock.acquire()
        try:
            if len(demands) == 1 and not (self._cooldown and key in self._cooldown):
                # The common single-dimension case (an rpm-only limiter), without the lists.
                rate, cost = demands[0]
                slot = key, rate.dimension
                tats = self._tat
                tat = tats.get(slot, now)
                if tat < now:
                    tat = now
                per_second = rate.per_second
                tat += cost / per_second
                ahead = tat - rate.burst / per_second - now
                if ahead > _EPSILON:
                    return ahead
                tats[slot] = tat
                return 0.0
            wait, tats_of = self._wait(key, demands, now)
            if wait > 0:
                return wait
            store = self._tat
            for (rate, _), tat in zip(demands, tats_of, strict=True):
                store[key, rate.dimension] = tat
            return 0.0
        finally:
            lock.release()

    def adjust(self, key: str, demands: Sequence[Demand], now: float) -> None:
        """Charge (cost > 0) or refund (cost < 0) units that were already admitted.

        A refund never lifts a dimension above its full capacity (TAT never goes below `now`).
        """
        with self._lock:
            for rate, cost in demands:
                slot = (key, rate.dimension)
                tat = max(self._tat.get(slot, now), now) + cost / rate.per_second
                self._tat[slot] = max(tat, now)

    def cooldown(self, key: str, until: float) -> None:
        """Admit nothing under `key` before `until` (a provider's Retry-After)."""
        with self._lock:
            if until > self._cooldown.get(key, float("-inf")):
                self._cooldown[key] = until

    def cooldown_until(self, key: str) -> float | None:
        """When the key's cooldown ends, if it has one."""
        with self._lock:
            return self._cooldown.get(key)
