"""`Fallback`: when a model is exhausted or its breaker is open, run the call on the next one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from agentmw._validate import check_name
from agentmw.classify import Failure, FailureScenario, classify_exception, scenario_predicate
from agentmw.core.call import Call
from agentmw.core.loops import (
    Restart,
    arestartable,
    arestartable_stream,
    restartable,
    restartable_stream,
)
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext
from agentmw.errors import CircuitOpenError


class Fallback(Middleware):
    """Reruns a failed turn with the next model of `models`.

    The call switches when it fails with a scenario in `on` (default: a retryable failure,
    which under a `Retry` layer means its retries ran out) or with `CircuitOpenError`. The
    switch rewrites `call.model` and the `model` keyword (`Call.set_model`) and restarts the
    attempt count, so each model gets its own retries and its own breaker and limiter key.
    Models are tried in order after the call's own model. Streams switch only before their
    first chunk reaches the consumer.

    Args:
        models: the fallback models, in order.
        on: scenarios (or a predicate on `Failure`) that trigger a switch.
        name: the layer's name in its stack.
    """

    def __init__(
        self,
        models: Iterable[str],
        *,
        on: Iterable[FailureScenario | str] | Callable[[Failure], bool] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, kinds="turn")
        if isinstance(models, str) or not isinstance(models, Iterable):
            raise TypeError(f"models must be a list of model names, got {type(models).__name__}")
        chosen = tuple(check_name(f"models[{i}]", m) for i, m in enumerate(models))
        if not chosen:
            raise ValueError("models must be a non-empty list of model names, got none")
        self.models = chosen
        self.on = scenario_predicate(on, argument="on", default=None)

    def _candidates(self, call: Call) -> list[str]:
        if call.model in self.models:
            return list(self.models[self.models.index(call.model) + 1 :])
        return [m for m in self.models if m != call.model]

    def _switch(self, call: Call, exc: BaseException, remaining: list[str]) -> bool:
        """Move `call` to the next model when `exc` calls for it; False: re-raise."""
        if not remaining:
            return False
        if isinstance(exc, CircuitOpenError):
            scenario = "circuit_open"
        else:
            failure = classify_exception(exc)
            if failure.scenario in (FailureScenario.CONTROL_FLOW, FailureScenario.CANCELLED):
                return False
            if not self.on(failure):
                return False
            scenario = failure.scenario.value
        previous, model = call.model, remaining.pop(0)
        call.set_model(model)
        call.attempt = 1
        call.emit("fallback.switched", from_model=previous, to_model=model, scenario=scenario)
        if call.session is not None:
            call.session.recoveries.append(
                {
                    "layer": self.name,
                    "step": call.step,
                    "name": call.name,
                    "action": "fallback",
                    "scenario": scenario,
                    "from_model": previous,
                    "to_model": model,
                }
            )
        return True

    # -- the four paths: Fallback switches at once, so the restart delay is always 0 ---------
    def _plan(self, call: Call) -> Restart:
        remaining = self._candidates(call)

        def restart(exc: BaseException) -> tuple[Call, float] | None:
            return (call, 0.0) if self._switch(call, exc, remaining) else None

        return restart

    def handle(self, call: Call, call_next: Next) -> Any:
        return restartable(call, call_next, self._plan, time.sleep)

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return arestartable(call, call_next, self._plan, asyncio.sleep)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return restartable_stream(call, call_next, self._plan, time.sleep)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return arestartable_stream(call, call_next, self._plan, asyncio.sleep)
