"""`CircuitBreaker`: fail fast while a model or tool is broken, probe it back to health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from agentmw._validate import (
    check_clock,
    check_int,
    check_number,
    check_optional_callable,
    check_optional_number,
    check_protocol,
)
from agentmw.classify import Failure, FailureScenario, classify_exception, scenario_predicate
from agentmw.core.call import Call
from agentmw.core.chain import derived_link, invoke_kwargs, is_terminal
from agentmw.core.context import CURRENT_CALL, current_session
from agentmw.core.middleware import PATHS, Middleware, overrides
from agentmw.errors import CircuitOpenError
from agentmw.events import emit_global
from agentmw.middleware._standalone import arun_fn, run_fn, standalone_call
from agentmw.stores.breaker import BreakerStore, InMemoryBreakerStore
from agentmw.stores.circuit import BreakerConfig, BreakerState, Outcome, Permit
from agentmw.usage import extract_usage

S = FailureScenario
COUNTED = frozenset({S.TIMEOUT, S.CONNECTION, S.SERVER_ERROR, S.OVERLOADED})
_EVENTS = {
    BreakerState.OPEN: "breaker.opened",
    BreakerState.HALF_OPEN: "breaker.half_open",
    BreakerState.CLOSED: "breaker.closed",
}
_PERMIT = "agentmw.circuit_breaker.permit"  # + the layer's id: the attempt's (key, Permit)


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

    order_role = "breaker"  # read by the stack's order checks (agentmw.core.order)

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
        self.config = BreakerConfig(
            failure_threshold=check_int("failure_threshold", failure_threshold, minimum=1),
            recovery_timeout=check_number(
                "recovery_timeout", recovery_timeout, above=0, finite=False
            ),
            half_open_max_calls=check_int("half_open_max_calls", half_open_max_calls, minimum=1),
            failure_ratio=check_optional_number("failure_ratio", failure_ratio, above=0, maximum=1),
            minimum_calls=check_int("minimum_calls", minimum_calls, minimum=1),
            window=check_number("window", window, above=0, finite=False),
        )
        self.key = check_optional_callable("key", key, "a callable call -> str") or _default_key
        self._custom_key = key is not None
        self.counts = scenario_predicate(counts, argument="counts", default=COUNTED)
        self.clock = check_clock("clock", clock) or time.monotonic
        if store is not None:
            check_protocol("store", store, BreakerStore)
        self.store: BreakerStore = store if store is not None else InMemoryBreakerStore()
        self._meta = f"{_PERMIT}:{id(self):x}"
        self._local = type(self.store) is InMemoryBreakerStore
        # The in-memory store's closed-circuit fast path: no lock and no clock on a closed
        # circuit's admissions and on successes that change nothing (see `settled`).
        self._memory = self.store if isinstance(self.store, InMemoryBreakerStore) else None
        self._fast_success = self._memory is not None and self.config.failure_ratio is None

    # -- decisions -------------------------------------------------------------------------
    def _outcome(self, exc: BaseException, kind: str = "turn") -> Outcome:
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)):
            return "release"
        failure = classify_exception(exc, kind=kind)
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
        """The permit, once its transition is announced; refuses the call when not allowed."""
        if permit.transition is None and permit.allowed:
            return permit
        if permit.transition is not None:
            self._announce(call, key, permit.transition)
        if not permit.allowed:
            raise CircuitOpenError(self.name, key, permit.retry_after)
        return permit

    # -- store access: the only difference between the paths ---------------------------------
    def awaits(self) -> bool:
        # An in-memory store does no I/O: the compiled async chain calls the sync hooks.
        return not self._local

    def _record(self, call: Call | None, key: str, permit: Permit, outcome: Outcome) -> None:
        changed = self.store.record(self.name, key, self.config, self.clock(), permit, outcome)
        if changed is not None:
            self._announce(call, key, changed)

    async def _arecord(self, call: Call | None, key: str, permit: Permit, outcome: Outcome) -> None:
        store, config = self.store, self.config
        changed = await store.arecord(self.name, key, config, self.clock(), permit, outcome)
        if changed is not None:
            self._announce(call, key, changed)

    # -- the compiled link: a closed in-memory circuit in one frame --------------------------
    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        # The hooks below, fused for the common case (the in-memory store, no failure ratio, a
        # closed circuit): `closed` and `settled` read inline. Anything else takes the hooks.
        if (
            mode not in ("sync", "async")
            or self._memory is None
            or not self._fast_success
            or any(overrides(self, m, CircuitBreaker) for m in PATHS)
        ):
            return None
        circuits, name, key_of = self._memory.circuits, self.name, self.key
        custom = key_of is not _default_key
        slow = derived_link(self, mode, call_next)
        if mode == "sync":

            def breaker(call: Call) -> Any:
                if custom:
                    key = key_of(call)
                else:  # `_default_key` inline
                    key = (call.model or call.name) if call.kind == "turn" else call.name
                circuit = circuits.get((name, key))
                if circuit is None or circuit.state is not BreakerState.CLOSED:
                    return slow(call)
                permit = circuit.closed_permit
                try:
                    result = call_next(call)
                except BaseException as exc:
                    self._record(call, key, permit, self._outcome(exc, call.kind))
                    raise
                if permit is not circuit.closed_permit or circuit.failures:
                    self._record(call, key, permit, "success")
                return result

            return breaker

        # The innermost layer runs the terminal's body itself (`core.chain._aterminal`): one
        # coroutine per attempt fewer.
        fused = is_terminal(call_next, "async")

        async def abreaker(call: Call) -> Any:
            if custom:
                key = key_of(call)
            else:  # `_default_key` inline
                key = (call.model or call.name) if call.kind == "turn" else call.name
            circuit = circuits.get((name, key))
            if circuit is None or circuit.state is not BreakerState.CLOSED:
                return await slow(call)
            permit = circuit.closed_permit
            try:
                if fused:
                    token = CURRENT_CALL.set(call)  # `current_call()` while the function runs
                    try:
                        kwargs = invoke_kwargs(call) if call.takes_idempotency_key else call.kwargs
                        result = await call.fn(*call.args, **kwargs)
                    finally:
                        CURRENT_CALL.reset(token)
                    ufn = call.usage_fn
                    call.usage = ufn(result) if ufn is not None else extract_usage(result)
                else:
                    result = await call_next(call)
            except BaseException as exc:
                self._record(call, key, permit, self._outcome(exc, call.kind))
                raise
            if permit is not circuit.closed_permit or circuit.failures:
                self._record(call, key, permit, "success")
            return result

        if fused:  # named for what it runs (tracebacks, and the test that checks the fusion)
            abreaker.__name__ = "abreaker_terminal"
        return abreaker

    # -- hooks: a permit before each attempt, its outcome after it -------------------------
    # Streams (the base class's paths) keep the stream rules: a stream that fails before its
    # first chunk records the failure's classified outcome ("release" for control flow and
    # cancellation); one that delivered a chunk and failed records that outcome too; one that
    # finished, or whose consumer stopped early, is a success.
    def before(self, call: Call) -> None:
        key = self.key(call)
        memory = self._memory
        permit = None if memory is None else memory.closed(self.name, key)
        if permit is None:
            permit = self._admit(
                call, key, self.store.acquire(self.name, key, self.config, self.clock())
            )
        call.meta[self._meta] = (key, permit)

    async def abefore(self, call: Call) -> None:
        key = self.key(call)
        permit = await self.store.aacquire(self.name, key, self.config, self.clock())
        call.meta[self._meta] = (key, self._admit(call, key, permit))

    def after(self, call: Call, result: Any) -> Any:
        key, permit = call.meta.pop(self._meta)
        memory = self._memory
        if not (
            self._fast_success and memory is not None and memory.settled(self.name, key, permit)
        ):
            self._record(call, key, permit, "success")
        return result

    async def aafter(self, call: Call, result: Any) -> Any:
        key, permit = call.meta.pop(self._meta)
        await self._arecord(call, key, permit, "success")
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        key, permit = call.meta.pop(self._meta)
        self._record(call, key, permit, self._outcome(exc, call.kind))

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        key, permit = call.meta.pop(self._meta)
        # A cancelled probe hands its permit back before the cancellation propagates.
        await asyncio.shield(self._arecord(call, key, permit, self._outcome(exc, call.kind)))

    # -- standalone ------------------------------------------------------------------------
    def _standalone(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Call:
        call = standalone_call(fn, args, kwargs)
        if not self._custom_key:  # one circuit for standalone use, keyed by the breaker's name
            call.name, call.model = self.name, None
        return call

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` through the breaker, outside any stack."""
        if self._custom_key:
            return self.handle(self._standalone(fn, args, kwargs), run_fn)
        # No Call built: this path is the benchmarked one.
        key = self.name
        permit = self.store.acquire(key, key, self.config, self.clock())
        self._admit(None, key, permit)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(None, key, permit, self._outcome(exc))
            raise
        self._record(None, key, permit, "success")
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `call`: awaits `fn(*args, **kwargs)`."""
        return await self.ahandle(self._standalone(fn, args, kwargs), arun_fn)

    def state(self, key: str | None = None) -> BreakerState:
        """The state of circuit `key` (None: the standalone circuit, keyed by the breaker name)."""
        return self.store.state(
            self.name, self.name if key is None else key, self.config, self.clock()
        )

    def reset(self, key: str | None = None) -> None:
        """Close circuit `key`, or every circuit of this breaker when `key` is None."""
        self.store.reset(self.name, key)
