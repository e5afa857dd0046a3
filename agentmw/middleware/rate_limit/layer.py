"""`RateLimit`: token-aware GCRA limits per key, FIFO waiting, reconciliation, 429 cooldowns."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from agentmw.classify import FailureScenario, classify_exception
from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext, aclose
from agentmw.errors import RateLimitedError
from agentmw.middleware.rate_limit.fifo import Lines, await_in_line, wait_in_line
from agentmw.middleware.rate_limit.reservation import Reservation
from agentmw.stores.gcra import Demand, Rate
from agentmw.stores.limiter import InMemoryLimiterStore, LimiterStore
from agentmw.usage import ZERO_USAGE, Usage, estimate_usage

Estimate = Callable[[Call], "Usage | int"]


def _per_minute(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class RateLimit(Middleware):
    """Reserves requests and tokens per key before each attempt; usable standalone too.

    Every configured dimension (`rpm`, `tpm`, `input_tpm`, `output_tpm`, per minute) is a GCRA
    per key (default key: the call's model). An attempt reserves one request and its estimated
    tokens on all dimensions at once, or waits in line (first come, first served) until it can.
    After the call the reservation is reconciled with the real usage; a failed or cancelled call
    gets its tokens back; a provider 429 with Retry-After pauses the key for every caller.

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
            "rpm": _per_minute("rpm", rpm),
            "tpm": _per_minute("tpm", tpm),
            "input_tpm": _per_minute("input_tpm", input_tpm),
            "output_tpm": _per_minute("output_tpm", output_tpm),
        }
        if all(v is None for v in limits.values()):
            raise ValueError("RateLimit needs at least one of rpm, tpm, input_tpm, output_tpm")
        share = 1.0 if burst is None else _per_minute("burst", burst)
        if share is None or share > 1:
            raise ValueError(f"burst must be a share of each limit, 0 < burst <= 1; got {burst!r}")
        rates = {
            dim: Rate(dim, value / 60.0, value * share)
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
        if key is not None and not isinstance(key, str) and not callable(key):
            raise TypeError(f"key must be a string, a callable or None, got {type(key).__name__}")
        if estimate is not None and not callable(estimate):
            raise TypeError(f"estimate must be a callable call -> Usage, got {type(estimate)}")
        if max_wait is not None:
            if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)):
                raise TypeError(f"max_wait must be a number or None, got {type(max_wait).__name__}")
            if not math.isfinite(max_wait) or max_wait < 0:
                raise ValueError(f"max_wait must be a finite number >= 0, got {max_wait!r}")
        self.key = key
        self.estimate = estimate
        self.max_wait = None if max_wait is None else float(max_wait)
        self.clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._sleep: Callable[[float], Any] = getattr(clock, "sleep", time.sleep)
        self._asleep: Callable[[float], Any] = getattr(clock, "asleep", asyncio.sleep)
        self.store: LimiterStore = store if store is not None else InMemoryLimiterStore()
        self._lines = Lines()
        # A request with no tokens always costs the same: its demands are computed (and their
        # size checked) once. An in-memory store does no I/O, so an uncontended async caller
        # can be admitted without awaiting anything.
        self._zero_demands = self.demands(ZERO_USAGE)
        self._check_size("any", self._zero_demands)
        self._local = type(self.store) is InMemoryLimiterStore

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

    def _check_size(self, key: str, demands: list[Demand]) -> None:
        for rate, cost in demands:
            if cost > rate.burst:
                raise RateLimitedError(
                    None,
                    f"a request of {cost:g} on {rate.dimension} for key {key!r} exceeds the burst "
                    f"of {rate.burst:g}; it can never be admitted (raise the limit or the burst, "
                    "or split the request)",
                )

    # -- acquisition -----------------------------------------------------------------------
    def _acquire(self, key: str, demands: list[Demand]) -> float:
        """Wait in line until `demands` are admitted; returns the seconds waited."""
        if demands is not self._zero_demands:
            self._check_size(key, demands)
        return wait_in_line(
            self._lines, self.store, key, demands, self.clock, self._sleep, self.max_wait
        )

    def _admit_now(self, key: str, demands: list[Demand]) -> bool:
        """Checks the request's size; True when an in-memory store admits it without a wait."""
        if demands is not self._zero_demands:
            self._check_size(key, demands)
        return (
            self._local
            and not self._lines.busy(key)
            and self.store.acquire(key, demands, self.clock()) == 0.0
        )

    async def _aacquire(self, key: str, demands: list[Demand]) -> float:
        """Async twin of `_acquire`."""
        if self._admit_now(key, demands):
            return 0.0
        return await await_in_line(
            self._lines, self.store, key, demands, self.clock, self._asleep, self.max_wait
        )

    def _demands_of(self, usage: Usage) -> list[Demand]:
        return self._zero_demands if usage is ZERO_USAGE else self.demands(usage)

    # -- standalone API --------------------------------------------------------------------
    def _usage_of(self, tokens: int | None, usage: Usage | None) -> Usage:
        if usage is not None:
            return usage
        return Usage(input_tokens=tokens) if tokens else ZERO_USAGE

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
        if usage is None and not tokens:
            reserved, demands = ZERO_USAGE, self._zero_demands
        else:
            reserved = self._usage_of(tokens, usage)
            demands = self._demands_of(reserved)
        waited = 0.0 if self._admit_now(key, demands) else await self._aacquire(key, demands)
        return Reservation(self, key, reserved, waited)

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

    # -- middleware ------------------------------------------------------------------------
    def _key_of(self, call: Call) -> str:
        key = self.key
        if key is None:
            return call.model or call.name
        return key if isinstance(key, str) else key(call)

    def _estimate_of(self, call: Call) -> Usage:
        if self.estimate is None:
            # An outer layer (Budget's precheck) may already have estimated this call.
            found = call.estimate or estimate_usage(call.args, call.kwargs)
        else:
            value = self.estimate(call)
            found = value if isinstance(value, Usage) else Usage(input_tokens=int(value))
        call.estimate = found
        return found

    def _admitted(self, call: Call, key: str, usage: Usage, waited: float) -> Reservation:
        if waited > 0:
            call.emit("rate_limit.waited", key=key, seconds=round(waited, 6))
        return Reservation(self, key, usage, waited)

    def _retry_after(self, exc: BaseException) -> float | None:
        failure = classify_exception(exc)
        if failure.scenario is FailureScenario.RATE_LIMITED and failure.retry_after:
            return failure.retry_after
        return None

    def handle(self, call: Call, call_next: Next) -> Any:
        key, usage = self._key_of(call), self._estimate_of(call)
        res = self._admitted(call, key, usage, self._acquire(key, self.demands(usage)))
        try:
            result = call_next(call)
        except BaseException as exc:
            res.refund()
            pause = self._retry_after(exc)
            if pause is not None:
                self.store.cooldown(key, self.clock() + pause)
                call.emit("rate_limit.cooldown", key=key, seconds=pause)
            raise
        if call.usage is not None:
            res.reconcile(call.usage)
        return result

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        key, usage = self._key_of(call), self._estimate_of(call)
        res = self._admitted(call, key, usage, await self._aacquire(key, self.demands(usage)))
        try:
            result = await call_next(call)
        except BaseException as exc:
            await res.arefund()
            pause = self._retry_after(exc)
            if pause is not None:
                await self.store.acooldown(key, self.clock() + pause)
                call.emit("rate_limit.cooldown", key=key, seconds=pause)
            raise
        if call.usage is not None:
            await res.areconcile(call.usage)
        return result

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        key, usage = self._key_of(call), self._estimate_of(call)
        res = self._admitted(call, key, usage, self._acquire(key, self.demands(usage)))
        try:
            yield from call_next(call)
        except BaseException as exc:
            # GeneratorExit: the consumer stopped early, and what it read was spent.
            if not isinstance(exc, GeneratorExit):
                res.refund()
            raise
        finally:
            if call.usage is not None:
                res.reconcile(call.usage)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        key, usage = self._key_of(call), self._estimate_of(call)
        res = self._admitted(call, key, usage, await self._aacquire(key, self.demands(usage)))
        agen = call_next(call)
        try:
            async for chunk in agen:
                yield chunk
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                res.refund()
            raise
        finally:
            await aclose(agen)
            if call.usage is not None:
                res.reconcile(call.usage)
