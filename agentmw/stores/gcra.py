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
EPSILON = 1e-9


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
        # dimension -> key -> TAT: a caller that knows its dimension looks a key up in one
        # dict of strings (cached hashes), not by a (key, dimension) tuple built per call.
        self._tat: dict[str, dict[str, float]] = {}
        self._cooldown: dict[str, float] = {}

    def lane(self, dimension: str) -> tuple[threading.Lock, dict[str, float], dict[str, float]]:
        """The lock, the TATs of `dimension` by key and the cooldowns by key: the same objects
        for the store's lifetime.

        For a caller that inlines `acquire`'s one-demand decision (`RateLimit.aacquire`'s
        uncontended path): it reads and writes the TATs only under the lock, and decides only
        for a key without a cooldown (any other goes through `acquire`).
        """
        with self._lock:
            return self._lock, self._tat.setdefault(dimension, {}), self._cooldown

    def _wait(self, key: str, demands: Sequence[Demand], now: float) -> tuple[float, list[float]]:
        # In TAT terms: admitting `cost` moves the theoretical arrival time by cost / rate, and
        # is allowed once that time is no further than `burst` units ahead of now.
        columns = self._tat
        cooldown = self._cooldown.get(key)
        wait = cooldown - now if cooldown is not None else 0.0
        tats = []
        for rate, cost in demands:
            per_second = rate.per_second
            column = columns.get(rate.dimension)
            tat = now if column is None else column.get(key, now)
            if tat < now:
                tat = now
            tat += cost / per_second
            ahead = tat - rate.burst / per_second - now
            if ahead > wait:
                wait = ahead
            tats.append(tat)
        return (wait if wait > EPSILON else 0.0), tats

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
                column = self._tat.get(rate.dimension)
                if column is None:
                    column = self._tat[rate.dimension] = {}
                tat = column.get(key, now)
                if tat < now:
                    tat = now
                per_second = rate.per_second
                tat += cost / per_second
                ahead = tat - rate.burst / per_second - now
                if ahead > EPSILON:
                    return ahead
                column[key] = tat
                return 0.0
            wait, tats_of = self._wait(key, demands, now)
            if wait > 0:
                return wait
            columns = self._tat
            for (rate, _), tat in zip(demands, tats_of, strict=True):
                columns.setdefault(rate.dimension, {})[key] = tat
            return 0.0
        finally:
            lock.release()

    def adjust(self, key: str, demands: Sequence[Demand], now: float) -> None:
        """Charge (cost > 0) or refund (cost < 0) units that were already admitted.

        A refund never lifts a dimension above its full capacity (TAT never goes below `now`).
        """
        with self._lock:
            for rate, cost in demands:
                column = self._tat.setdefault(rate.dimension, {})
                tat = max(column.get(key, now), now) + cost / rate.per_second
                column[key] = max(tat, now)

    def cooldown(self, key: str, until: float) -> None:
        """Admit nothing under `key` before `until` (a provider's Retry-After)."""
        with self._lock:
            if until > self._cooldown.get(key, float("-inf")):
                self._cooldown[key] = until

    def cooldown_until(self, key: str) -> float | None:
        """When the key's cooldown ends, if it has one."""
        with self._lock:
            return self._cooldown.get(key)
