"""`CircuitBreaker`: fail fast while a model or tool is broken, probe it back to health."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from agentmw.classify import Failure, FailureScenario, classify_exception, scenario_predicate
from agentmw.core.call import Call
from agentmw.core.context import current_session
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext, aclose
from agentmw.errors import CircuitOpenError
from agentmw.events import emit_global
from agentmw.middleware._standalone import arun_fn, run_fn, standalone_call
from agentmw.stores.breaker import BreakerStore, InMemoryBreakerStore
from agentmw.stores.circuit import BreakerConfig, BreakerState, Outcome, Permit

S = FailureScenario
COUNTED = frozenset({S.TIMEOUT, S.CONNECTION, S.SERVER_ERROR, S.OVERLOADED})
_EVENTS = {
    BreakerState.OPEN: "breaker.opened",
    BreakerState.HALF_OPEN: "breaker.half_open",
    BreakerState.CLOSED: "breaker.closed",
}


def _positive_int(label: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label} must be an int >= 1, got {value!r}")
    return value


def _seconds(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{label} must be a number > 0, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{label} must be a number > 0, got {value!r}")
    return float(value)


def _default_key(call: Call) -> str:
    return (call.model or call.name) if call.kind == "turn" else call.name


class CircuitBreaker(Middleware):
    """Opens after repeated counted failures, rejects while open, probes after a pause.

    CLOSED opens after `failure_threshold` consecutive counted failures, or, with
    `failure_ratio`, when at least `minimum_calls` calls in the last `window` seconds failed at
    that ratio or more (either rule trips it). OPEN refuses with `CircuitOpenError` without
    calling. After `recovery_timeout` it is HALF_OPEN and admits `half_open_max_calls` probes:
    all succeeding close it, any failing opens it again. One instance serves sync and async
    callers, as a stack layer or standalone (`call`, `acall`); the lock guards the state, never
    the call.

    Args:
        name: the breaker's name (also its layer name and its store namespace).
        failure_threshold: consecutive counted failures that open the circuit.
        recovery_timeout: seconds the circuit stays open before probing.
        half_open_max_calls: probes admitted in HALF_OPEN; all must succeed to close.
        failure_ratio: open when this share of recent calls failed (0 < ratio <= 1).
        minimum_calls: the fewest calls in the window before the ratio applies.
        window: the ratio's window in seconds.
        key: `(Call) -> str` choosing the circuit (default: the model; for tools, the tool name).
        counts: scenarios (or a predicate on `Failure`) that count as failures.
        clock: monotonic seconds (default `time.monotonic`).
        store: where the state lives (default: in memory, per breaker).
        kinds: the call kinds it applies to.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        failure_ratio: float | None = None,
        minimum_calls: int = 10,
        window: float = 60.0,
        key: Callable[[Call], str] | None = None,
        counts: Iterable[FailureScenario | str] | Callable[[Failure], bool] | None = None,
        clock: Callable[[], float] | None = None,
        store: BreakerStore | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        if failure_ratio is not None:
            ok = isinstance(failure_ratio, (int, float)) and not isinstance(failure_ratio, bool)
            if not ok or not 0 < failure_ratio <= 1:
                raise ValueError(f"failure_ratio must be in (0, 1] or None, got {failure_ratio!r}")
        for label, fn in (("key", key), ("clock", clock)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{label} must be callable, got {fn!r}")
        if store is not None and not isinstance(store, BreakerStore):
            raise ValueError(f"store must implement BreakerStore, got {store!r}")
        self.config = BreakerConfig(
            failure_threshold=_positive_int("failure_threshold", failure_threshold),
            recovery_timeout=_seconds("recovery_timeout", recovery_timeout),
            half_open_max_calls=_positive_int("half_open_max_calls", half_open_max_calls),
            failure_ratio=None if failure_ratio is None else float(failure_ratio),
            minimum_calls=_positive_int("minimum_calls", minimum_calls),
            window=_seconds("window", window),
        )
        self.key = key or _default_key
        self._custom_key = key is not None
        self.counts = scenario_predicate(counts, argument="counts", default=COUNTED)
        self.clock = clock or time.monotonic
        self.store: BreakerStore = store if store is not None else InMemoryBreakerStore()

    # -- decisions -------------------------------------------------------------------------
    def _outcome(self, exc: BaseException) -> Outcome:
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)):
            return "release"
        failure = classify_exception(exc)
        if failure.scenario in (S.CONTROL_FLOW, S.CANCELLED):
            return "release"
        return "failure" if self.counts(failure) else "release"

    def _announce(self, call: Call | None, key: str, state: BreakerState) -> None:
        if call is not None:
            call.emit(_EVENTS[state], breaker=self.name, key=key)
            return
        # Standalone calls build no Call; their events go to the current session, if any.
        session = current_session()
        data = {"breaker": self.name, "key": key}
        if session is not None:
            session.emit(_EVENTS[state], data=data)
        else:
            emit_global(_EVENTS[state], data=data)

    def _admit(self, call: Call | None, key: str, permit: Permit) -> Permit:
        if permit.transition is not None:
            self._announce(call, key, permit.transition)
        if not permit.allowed:
            raise CircuitOpenError(self.name, key, permit.retry_after)
        return permit

    def _acquire(self, call: Call | None, key: str) -> Permit:
        permit = self.store.acquire(self.name, key, self.config, self.clock())
        if permit.transition is None and permit.allowed:
            return permit
        return self._admit(call, key, permit)

    def _record(self, call: Call | None, key: str, permit: Permit, outcome: Outcome) -> None:
        changed = self.store.record(self.name, key, self.config, self.clock(), permit, outcome)
        if changed is not None:
            self._announce(call, key, changed)

    async def _aacquire(self, call: Call | None, key: str) -> Permit:
        permit = await self.store.aacquire(self.name, key, self.config, self.clock())
        return self._admit(call, key, permit)

    async def _arecord(self, call: Call | None, key: str, permit: Permit, outcome: Outcome) -> None:
        changed = await self.store.arecord(
            self.name, key, self.config, self.clock(), permit, outcome
        )
        if changed is not None:
            self._announce(call, key, changed)

    # -- the four paths --------------------------------------------------------------------
    def handle(self, call: Call, call_next: Next) -> Any:
        key = self.key(call)
        permit = self._acquire(call, key)
        try:
            result = call_next(call)
        except BaseException as exc:
            self._record(call, key, permit, self._outcome(exc))
            raise
        self._record(call, key, permit, "success")
        return result

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        key = self.key(call)
        permit = await self._aacquire(call, key)
        try:
            result = await call_next(call)
        except BaseException as exc:
            # A cancelled probe hands its permit back before the cancellation propagates.
            await asyncio.shield(self._arecord(call, key, permit, self._outcome(exc)))
            raise
        await self._arecord(call, key, permit, "success")
        return result

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        key = self.key(call)
        permit = self._acquire(call, key)
        outcome: Outcome = "release"
        try:
            for chunk in call_next(call):
                outcome = "success"  # the stream delivered; an early stop is not a failure
                yield chunk
            outcome = "success"
        except GeneratorExit:
            raise
        except BaseException as exc:
            outcome = self._outcome(exc)
            raise
        finally:
            self._record(call, key, permit, outcome)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        key = self.key(call)
        permit = await self._aacquire(call, key)
        outcome: Outcome = "release"
        agen = call_next(call)
        try:
            async for chunk in agen:
                outcome = "success"
                yield chunk
            outcome = "success"
        except GeneratorExit:
            raise
        except BaseException as exc:
            outcome = self._outcome(exc)
            raise
        finally:
            await aclose(agen)
            await self._arecord(call, key, permit, outcome)

    # -- standalone ------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` through the breaker, outside any stack."""
        if self._custom_key:
            return self.handle(standalone_call(fn, args, kwargs), run_fn)
        # One circuit for standalone use, and no Call built: this path is the benchmarked one.
        key, store, config, clock = self.name, self.store, self.config, self.clock
        permit = store.acquire(key, key, config, clock())
        if permit.transition is not None or not permit.allowed:
            self._admit(None, key, permit)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(None, key, permit, self._outcome(exc))
            raise
        changed = store.record(key, key, config, clock(), permit, "success")
        if changed is not None:
            self._announce(None, key, changed)
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `call`: awaits `fn(*args, **kwargs)`."""
        if self._custom_key:
            return await self.ahandle(standalone_call(fn, args, kwargs), arun_fn)
        key = self.name
        permit = await self._aacquire(None, key)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            # A cancelled probe hands its permit back before the cancellation propagates.
            await asyncio.shield(self._arecord(None, key, permit, self._outcome(exc)))
            raise
        await self._arecord(None, key, permit, "success")
        return result

    def state(self, key: str | None = None) -> BreakerState:
        """The state of circuit `key` (None: the standalone circuit, keyed by the breaker name)."""
        return self.store.state(
            self.name, self.name if key is None else key, self.config, self.clock()
        )

    def reset(self, key: str | None = None) -> None:
        """Close circuit `key`, or every circuit of this breaker when `key` is None."""
        self.store.reset(self.name, key)
