"""`RateLimit`: token-aware GCRA limits per key, FIFO waiting, reconciliation, 429 cooldowns."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from agentmw._validate import (
    check_callable,
    check_clock,
    check_optional_callable,
    check_optional_number,
    check_protocol,
)
from agentmw.classify import FailureScenario, classify_exception
from agentmw.core.call import Call
from agentmw.core.middleware import Middleware
from agentmw.errors import RateLimitedError
from agentmw.middleware.rate_limit.fifo import Lines
from agentmw.middleware.rate_limit.reservation import Reservation
from agentmw.stores.gcra import EPSILON, Demand, Rate
from agentmw.stores.limiter import InMemoryLimiterStore, LimiterStore
from agentmw.usage import ZERO_USAGE, Usage, estimate_usage

Estimate = Callable[[Call], "Usage | int"]
_new = object.__new__
_RESERVATION = "agentmw.rate_limit.reservation"  # + the layer's id: the call's Reservation


class RateLimit(Middleware):
    """Reserves requests and tokens per key before each attempt; usable standalone too.

    Every configured dimension (`rpm`, `tpm`, `input_tpm`, `output_tpm`, per minute) is a GCRA
    per key (default key: the call's model). An attempt reserves one request and its estimated
    tokens on all dimensions at once, or waits in line (first come, first served) until it can.
    After the call the reservation is reconciled with the real usage; a failed or cancelled call
    gets its tokens back; a provider 429 with Retry-After pauses the key for every caller.
    Streams reserve before their first chunk and settle the same way when they end (a consumer
    that stops early has spent what it read). The async paths only await the store's `a*` twins.

    Args:
        rpm: requests per minute.
        tpm: input + output tokens per minute.
        input_tpm: input tokens per minute.
        output_tpm: output tokens per minute.
        burst: share (0 < burst <= 1) of each per-minute limit usable at once (default 1: a full
            minute's quota, as providers allow). Larger requests are rejected at once.
        key: a fixed key, or call -> key (default: the model, else the call's name).
        estimate: call -> `Usage` (or total tokens) to reserve; default: prompt characters / 4 in,
            `max_tokens` (or `max_output_tokens`) out.
        max_wait: longest wait in seconds; longer ones raise `RateLimitedError` at once.
        clock: monotonic seconds; an object with `sleep`/`asleep` (like `FakeClock`) also
            provides the waits.
        store: where limiter state lives (default: in memory).
    """

    order_role = "rate_limit"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        input_tpm: float | None = None,
        output_tpm: float | None = None,
        burst: float | None = None,
        key: str | Callable[[Call], str] | None = None,
        estimate: Estimate | None = None,
        max_wait: float | None = None,
        clock: Callable[[], float] | None = None,
        store: LimiterStore | None = None,
        name: str | None = None,
        kinds: Any = "turn",
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        limits = {
            dim: check_optional_number(dim, value, above=0)
            for dim, value in (
                ("rpm", rpm),
                ("tpm", tpm),
                ("input_tpm", input_tpm),
                ("output_tpm", output_tpm),
            )
        }
        if all(v is None for v in limits.values()):
            raise ValueError("RateLimit needs at least one of rpm, tpm, input_tpm, output_tpm")
        share = check_optional_number("burst", burst, above=0, maximum=1)
        rates = {
            dim: Rate(dim, value / 60.0, value * (1.0 if share is None else share))
            for dim, value in limits.items()
            if value is not None
        }
        rpm_rate = rates.get("rpm")
        if rpm_rate is not None and rpm_rate.burst < 1:
            raise ValueError(f"rpm * burst must allow one request at once, got {rpm_rate.burst!r}")
        self.rates = rates
        self._rpm = rpm_rate
        self._tpm = rates.get("tpm")
        self._input = rates.get("input_tpm")
        self._output = rates.get("output_tpm")
        if key is not None and not isinstance(key, str):
            check_callable("key", key, "a string, a callable call -> str, or None")
        self.key = key
        self.estimate = check_optional_callable("estimate", estimate, "a callable call -> Usage")
        self.max_wait = check_optional_number("max_wait", max_wait, minimum=0)
        self.clock: Callable[[], float] = check_clock("clock", clock) or time.monotonic
        self._sleep: Callable[[float], Any] = getattr(clock, "sleep", time.sleep)
        self._asleep: Callable[[float], Any] = getattr(clock, "asleep", asyncio.sleep)
        self.store: LimiterStore = (
            InMemoryLimiterStore()
            if store is None
            else check_protocol("store", store, LimiterStore)
        )
        self._lines = Lines(self.store, self.clock, self.max_wait)
        self._meta = f"{_RESERVATION}:{id(self):x}"
        # A request with no tokens always costs the same: its demands are computed (and their
        # size checked) once. An in-memory store does no I/O, so an uncontended caller is
        # admitted without entering a waiting line (and, on the async path, without awaiting).
        self._zero_demands = self.demands(ZERO_USAGE)
        self._check_size("any", self._zero_demands)
        self._local = type(self.store) is InMemoryLimiterStore
        self._try = self.store.acquire
        self._waiting = self._lines._lines  # key -> its line (absent or empty: nobody waits)
        self._lane = self._lane_of(self.store)

    def _lane_of(
        self, store: LimiterStore
    ) -> tuple[threading.Lock, dict[str, float], dict[str, float], float, float] | None:
        """What `aacquire`'s inlined uncontended path needs when a request without tokens is
        one demand on an in-memory store: `GCRA.lane` for its dimension, then the demand's
        `cost / per_second` and `burst / per_second`, computed as `GCRA.acquire` computes them
        on every call (same operands, same operations: equal floats, equal decisions)."""
        if type(store) is not InMemoryLimiterStore or len(self._zero_demands) != 1:
            return None
        ((rate, cost),) = self._zero_demands
        return (
            *store.lane(rate.dimension),
            cost / rate.per_second,
            rate.burst / rate.per_second,
        )

    # -- demands ---------------------------------------------------------------------------
    def demands(self, usage: Usage, *, request: bool = True) -> list[Demand]:
        """What `usage` costs on each configured dimension (plus one request when `request`)."""
        out: list[Demand] = []
        if request and self._rpm is not None:
            out.append((self._rpm, 1.0))
        if self._tpm is not None:
            out.append((self._tpm, float(usage.total_tokens)))
        if self._input is not None:
            out.append((self._input, float(usage.input_tokens)))
        if self._output is not None:
            out.append((self._output, float(usage.output_tokens)))
        return out

    def _deltas(self, reserved: Usage, actual: Usage | int | None) -> list[Demand]:
        """What settling a reservation of `reserved` tokens changes on each token dimension:
        the surplus back (< 0) or the excess charged (> 0) for `actual`; all of it back for
        None (a refund). Dimensions that do not change are left out."""
        if actual is None:
            return [(rate, -cost) for rate, cost in self.demands(reserved, request=False) if cost]
        if not isinstance(actual, Usage):
            actual = Usage(input_tokens=int(actual))
        out: list[Demand] = []
        if self._tpm is not None and actual.total_tokens != reserved.total_tokens:
            out.append((self._tpm, float(actual.total_tokens) - float(reserved.total_tokens)))
        if self._input is not None and actual.input_tokens != reserved.input_tokens:
            out.append((self._input, float(actual.input_tokens) - float(reserved.input_tokens)))
        if self._output is not None and actual.output_tokens != reserved.output_tokens:
            out.append((self._output, float(actual.output_tokens) - float(reserved.output_tokens)))
        return out

    def _check_size(self, key: str, demands: list[Demand]) -> None:
        for rate, cost in demands:
            if cost > rate.burst:
                raise RateLimitedError(
                    None,
                    f"a request of {cost:g} on {rate.dimension} for key {key!r} exceeds the burst "
                    f"of {rate.burst:g}; it can never be admitted (raise the limit or the burst, "
                    "or split the request)",
                )

    # -- acquisition: one try while nobody waits, else the FIFO line; two ways to wait -------
    def _acquire(self, key: str, demands: list[Demand]) -> float:
        """Wait in line until `demands` are admitted; returns the seconds waited."""
        if demands is not self._zero_demands:
            self._check_size(key, demands)
        lines = self._lines
        if lines.busy(key):
            return lines.wait_in_line(key, demands, self._sleep)
        now = self.clock()
        if self.store.acquire(key, demands, now) == 0.0:
            return 0.0
        return lines.wait_in_line(key, demands, self._sleep, now)

    def _admit_local(self, key: str, demands: list[Demand]) -> bool:
        """Checks the request's size; True when an in-memory store admits it at once (nobody
        waits under `key`). The async paths call this without awaiting: an uncontended caller
        costs no coroutine frame beyond its own."""
        if demands is not self._zero_demands:
            self._check_size(key, demands)
        if not self._local or self._lines.busy(key):
            return False
        return self.store.acquire(key, demands, self.clock()) == 0.0

    async def _aacquire(self, key: str, demands: list[Demand]) -> float:
        """Async twin of `_acquire`, after `_admit_local` said no."""
        lines = self._lines
        if self._local or lines.busy(key):
            return await lines.await_in_line(key, demands, self._asleep)
        now = self.clock()
        if await self.store.aacquire(key, demands, now) == 0.0:
            return 0.0
        return await lines.await_in_line(key, demands, self._asleep, now)

    # -- standalone API --------------------------------------------------------------------
    def _usage_of(self, tokens: int | None, usage: Usage | None) -> Usage:
        if usage is not None:
            return usage
        return Usage(input_tokens=tokens) if tokens else ZERO_USAGE

    def _demands_of(self, usage: Usage) -> list[Demand]:
        return self._zero_demands if usage is ZERO_USAGE else self.demands(usage)

    def acquire(
        self, tokens: int | None = None, *, usage: Usage | None = None, key: str = "default"
    ) -> Reservation:
        """Reserve one request and `tokens` (or `usage`) under `key`, waiting if needed."""
        reserved = self._usage_of(tokens, usage)
        waited = self._acquire(key, self._demands_of(reserved))
        return Reservation(self, key, reserved, waited)

    async def aacquire(
        self, tokens: int | None = None, *, usage: Usage | None = None, key: str = "default"
    ) -> Reservation:
        """Async twin of `acquire`."""
        if usage is None and not tokens and self._local:
            # The common uncontended case, inlined (no await, no allocation beyond the
            # Reservation): one request, nobody in line under `key`, an in-memory store.
            waiting = self._waiting
            if not waiting or not waiting.get(key):
                lane = self._lane
                if lane is None:
                    if not self._try(key, self._zero_demands, self.clock()):
                        return Reservation(self, key, ZERO_USAGE, 0.0)
                else:
                    # One demand: `GCRA.acquire`'s decision in this frame, under the store's
                    # lock; a key with a cooldown is left to the store (the tests in
                    # tests/middleware/test_rate_limit_fast_path.py check both decide alike).
                    lock, column, cooldowns, step, window = lane
                    now = self.clock()
                    lock.acquire()
                    try:
                        tat = column.get(key, now)
                        if tat < now:
                            tat = now
                        tat += step
                        admit = tat - window - now <= EPSILON and key not in cooldowns
                        if admit:
                            column[key] = tat
                    finally:
                        lock.release()
                    if admit:
                        # `Reservation(self, key, ZERO_USAGE, 0.0)` without a Python
                        # `__init__` frame (the test compares every slot with the constructor's).
                        reservation = _new(Reservation)
                        reservation._limiter, reservation.key = self, key
                        reservation.usage, reservation.waited = ZERO_USAGE, 0.0
                        reservation.settled = False
                        return reservation
            return Reservation(self, key, ZERO_USAGE, await self._aacquire(key, self._zero_demands))
        reserved = self._usage_of(tokens, usage)
        demands = self._demands_of(reserved)
        if self._admit_local(key, demands):
            return Reservation(self, key, reserved, 0.0)
        return Reservation(self, key, reserved, await self._aacquire(key, demands))

    @contextmanager
    def reserve(
        self, tokens: int | None = None, *, usage: Usage | None = None, key: str = "default"
    ) -> Iterator[Reservation]:
        """`with limiter.reserve(tokens=n) as r: ...; r.reconcile(actual)`.

        Leaving the block with an exception refunds the tokens (unless already reconciled).
        """
        reservation = self.acquire(tokens, usage=usage, key=key)
        try:
            yield reservation
        except BaseException:
            reservation.refund()
            raise

    @asynccontextmanager
    async def areserve(
        self, tokens: int | None = None, *, usage: Usage | None = None, key: str = "default"
    ) -> AsyncIterator[Reservation]:
        """Async twin of `reserve`: `async with limiter.areserve(tokens=n) as r: ...`."""
        reservation = await self.aacquire(tokens, usage=usage, key=key)
        try:
            yield reservation
        except BaseException:
            await reservation.arefund()
            raise

    # -- decisions of the middleware (shared by the four paths) ----------------------------
    def _request(self, call: Call) -> tuple[str, Usage, list[Demand]]:
        """The key, the estimated usage and what it costs, for one attempt of `call`."""
        key = self.key
        if key is None:
            key = call.model or call.name
        elif not isinstance(key, str):
            key = key(call)
        if self.estimate is None:
            # An outer layer (Budget's precheck) may already have estimated this call.
            usage = call.estimate or estimate_usage(call.args, call.kwargs)
        else:
            value = self.estimate(call)
            usage = value if isinstance(value, Usage) else Usage(input_tokens=int(value))
        call.estimate = usage
        return key, usage, self.demands(usage)

    def _admitted(self, call: Call, key: str, usage: Usage, waited: float) -> None:
        if waited > 0:
            call.emit("rate_limit.waited", key=key, seconds=round(waited, 6))
        call.meta[self._meta] = Reservation(self, key, usage, waited)

    def _failed(self, call: Call, exc: BaseException) -> tuple[Reservation, float | None]:
        """The failed attempt's reservation (to refund) and the provider's 429 pause, if any."""
        failure = classify_exception(exc)
        pause = failure.retry_after if failure.scenario is FailureScenario.RATE_LIMITED else None
        return call.meta.pop(self._meta), pause or None

    def _cooled(self, call: Call, key: str, pause: float) -> None:
        call.emit("rate_limit.cooldown", key=key, seconds=pause)

    # -- hooks: reserve before each attempt, reconcile after it, refund (and cool down) on error
    def before(self, call: Call) -> None:
        key, usage, demands = self._request(call)
        self._admitted(call, key, usage, self._acquire(key, demands))

    async def abefore(self, call: Call) -> None:
        key, usage, demands = self._request(call)
        if self._admit_local(key, demands):
            call.meta[self._meta] = Reservation(self, key, usage, 0.0)
        else:
            self._admitted(call, key, usage, await self._aacquire(key, demands))

    def after(self, call: Call, result: Any) -> Any:
        reservation: Reservation = call.meta.pop(self._meta)
        if call.usage is not None:
            reservation.reconcile(call.usage)
        return result

    async def aafter(self, call: Call, result: Any) -> Any:
        reservation: Reservation = call.meta.pop(self._meta)
        if call.usage is not None:
            await reservation.areconcile(call.usage)
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        reservation, pause = self._failed(call, exc)
        reservation.refund()
        if pause is not None:
            self.store.cooldown(reservation.key, self.clock() + pause)
            self._cooled(call, reservation.key, pause)

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        reservation, pause = self._failed(call, exc)
        await reservation.arefund()
        if pause is not None:
            await self.store.acooldown(reservation.key, self.clock() + pause)
            self._cooled(call, reservation.key, pause)
