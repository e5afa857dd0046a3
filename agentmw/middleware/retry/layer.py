"""`Retry`: re-run a failed attempt when its failure is worth another try."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import tenacity

from agentmw._validate import (
    check_bool,
    check_callable,
    check_choice,
    check_instance,
    check_int,
    check_number,
    check_optional_callable,
)
from agentmw.classify import Failure, FailureScenario, classify_exception, scenario_predicate
from agentmw.core.call import Call
from agentmw.core.loops import (
    Restart,
    arestart_link,
    arestartable,
    arestartable_stream,
    restart_link,
    restartable,
    restartable_stream,
)
from agentmw.core.middleware import (
    AsyncNext,
    AsyncStreamNext,
    Middleware,
    Next,
    StreamNext,
    overrides,
)
from agentmw.middleware._standalone import arun_fn, run_fn, standalone_call
from agentmw.middleware.retry.backoff import JITTERS, backoff_delay

Recover = Callable[[Call, Failure], Call | None]
_NEVER = frozenset({FailureScenario.CONTROL_FLOW, FailureScenario.CANCELLED})


def _recover_map(recover: Any) -> dict[FailureScenario, Recover]:
    if recover is None:
        return {}
    check_instance("recover", recover, Mapping, "a mapping scenario -> callable(call, failure)")
    out: dict[FailureScenario, Recover] = {}
    for scenario, fn in recover.items():
        check_callable(f"recover[{scenario!r}]", fn, "a callable(call, failure) -> Call | None")
        try:
            out[FailureScenario(scenario)] = fn
        except ValueError:
            raise ValueError(f"recover has an unknown scenario {scenario!r}") from None
    return out


class _BackoffWait(tenacity.wait.wait_base):
    """A tenacity wait strategy computing `backoff_delay` (decorrelated jitter reads the last)."""

    def __init__(self, base: float, cap: float, jitter: str) -> None:
        self.base, self.cap, self.jitter = base, cap, jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        prev = retry_state.upcoming_sleep or None
        return backoff_delay(
            retry_state.attempt_number, base=self.base, cap=self.cap, jitter=self.jitter, prev=prev
        )


class _Plan:
    """The failure path of one logical call: built only once an attempt has failed."""

    __slots__ = ("call", "history", "layer", "state")

    def __init__(self, layer: Retry, call: Call) -> None:
        self.layer = layer
        self.call = call
        self.history: list[tuple[int, str, float]] = []
        self.state = tenacity.RetryCallState(cast(Any, None), None, (), {})

    def restart(self, exc: BaseException) -> tuple[Call, float] | None:
        """The call for the next attempt and the delay before it, or None to re-raise."""
        delay = self.failed(exc)
        return None if delay is None else (self.call, delay)

    def failed(self, exc: BaseException) -> float | None:
        """The delay before the next attempt, or None to give up (the caller re-raises)."""
        layer, call = self.layer, self.call
        failure = classify_exception(exc, kind=call.kind)
        if failure.scenario in _NEVER:
            return None
        if not layer.on(failure):
            return self._give_up(exc, failure, "not_retried") if self.history else None
        state = self.state
        state.attempt_number = call.attempt
        if layer.stop(state):
            return self._give_up(exc, failure, "exhausted")
        if failure.retry_after is not None and layer.respect_retry_after:
            if failure.retry_after > layer.max_retry_after:
                return self._give_up(exc, failure, "retry_after_too_long")
            delay = failure.retry_after
        else:
            delay = layer.wait(state)
        state.upcoming_sleep = delay
        handler = layer.recover.get(failure.scenario)
        if handler is not None:
            changed = handler(call, failure)
            if changed is None:
                return self._give_up(exc, failure, "recover_declined")
            self._record(call, "recovered", failure.scenario, call.attempt)
            call = self.call = changed
        self.history.append((call.attempt, failure.scenario.value, delay))
        call.attempt += 1
        call.emit(
            "retry.scheduled", attempt=call.attempt, scenario=failure.scenario.value, delay=delay
        )
        self._record(call, "retry", failure.scenario, call.attempt, delay=delay)
        return delay

    def _give_up(self, exc: BaseException, failure: Failure, reason: str) -> float | None:
        call = self.call
        self.history.append((call.attempt, failure.scenario.value, math.nan))
        call.emit(
            "retry.exhausted", attempt=call.attempt, scenario=failure.scenario.value, reason=reason
        )
        self._record(call, reason, failure.scenario, call.attempt)
        steps = "; ".join(
            f"attempt {n}: {scenario}" + ("" if math.isnan(d) else f", retried after {d:.3g}s")
            for n, scenario, d in self.history
        )
        count = len(self.history)
        exc.add_note(f"agentmw.Retry gave up ({reason}) after {count} attempts: {steps}")
        return None

    def _record(
        self, call: Call, action: str, scenario: FailureScenario, attempt: int, **extra: Any
    ) -> None:
        if call.session is not None:
            call.session.recoveries.append(
                {
                    "layer": self.layer.name,
                    "step": call.step,
                    "name": call.name,
                    "model": call.model,
                    "action": action,
                    "scenario": scenario.value,
                    "attempt": attempt,
                    **extra,
                }
            )


class Retry(Middleware):
    """Re-runs everything below it when an attempt fails with a retryable failure.

    The success path is a plain `try` around the next layer: the retry state (tenacity's stop
    and wait strategies, the attempt history) is built only once an attempt fails. When retries
    run out, the last real exception is re-raised unchanged with a note listing the attempts.
    Control-flow errors and cancellation are never retried. Streams retry only before their
    first chunk reaches the consumer.

    Args:
        attempts: the most attempts in total (>= 1).
        on: the scenarios to retry, or a predicate `(Failure) -> bool`; default: retryable ones.
        jitter: backoff jitter mode: "none", "full", "equal" or "decorrelated".
        base: the first backoff delay in seconds.
        cap: the longest backoff delay in seconds.
        respect_retry_after: wait the server's `retry_after` when it sent one.
        max_retry_after: a longer server delay gives up at once with the original error.
        recover: scenario -> `callable(call, failure) -> Call | None` changing the next attempt
            (None gives up).
        sleep: the sync sleep (default `time.sleep`).
        asleep: the async sleep (default `asyncio.sleep`).
        name: the layer's name in its stack.
        kinds: the call kinds it applies to.
    """

    order_role = "retry"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        attempts: int = 3,
        *,
        on: Iterable[FailureScenario | str] | Callable[[Failure], bool] | None = None,
        jitter: str = "full",
        base: float = 0.5,
        cap: float = 30.0,
        respect_retry_after: bool = True,
        max_retry_after: float = 120.0,
        recover: Mapping[FailureScenario | str, Recover] | None = None,
        sleep: Callable[[float], Any] | None = None,
        asleep: Callable[[float], Awaitable[Any]] | None = None,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.attempts = check_int("attempts", attempts, minimum=1)
        self.on = scenario_predicate(on, argument="on", default=None)
        self.jitter = check_choice("jitter", jitter, JITTERS)
        self.base = check_number("base", base, minimum=0, finite=False)
        self.cap = check_number("cap", cap, minimum=0, finite=False)
        self.respect_retry_after = check_bool("respect_retry_after", respect_retry_after)
        self.max_retry_after = check_number(
            "max_retry_after", max_retry_after, minimum=0, finite=False
        )
        self.recover = _recover_map(recover)
        seconds = "a callable taking seconds"
        self.sleep: Callable[[float], Any] = check_optional_callable("sleep", sleep, seconds) or (
            time.sleep
        )
        self.asleep: Callable[[float], Awaitable[Any]] = (
            check_optional_callable("asleep", asleep, "an async callable taking seconds")
            or asyncio.sleep
        )
        self.stop = tenacity.stop_after_attempt(attempts)
        self.wait = _BackoffWait(self.base, self.cap, self.jitter)

    # -- the four paths: one restart loop per path shape, the decision in `_Plan` ------------
    def _plan(self, call: Call) -> Restart:
        return _Plan(self, call).restart

    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        # The first attempt inline (`restart_link`); a subclass that overrides a path keeps it.
        if mode == "sync" and not overrides(self, "handle", Retry):
            return restart_link(call_next, self._plan, lambda: self.sleep)
        if mode == "async" and not overrides(self, "ahandle", Retry):
            return arestart_link(call_next, self._plan, lambda: self.asleep)
        return None

    def handle(self, call: Call, call_next: Next) -> Any:
        return restartable(call, call_next, self._plan, self.sleep)

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return arestartable(call, call_next, self._plan, self.asleep)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return restartable_stream(call, call_next, self._plan, self.sleep)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return arestartable_stream(call, call_next, self._plan, self.asleep)

    # -- standalone ------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` with this retry policy, outside any stack."""
        return self.handle(standalone_call(fn, args, kwargs), run_fn)

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `call`: awaits `fn(*args, **kwargs)` on each attempt."""
        return await self.ahandle(standalone_call(fn, args, kwargs), arun_fn)
