"""DBOS: run an agentmw session inside a DBOS workflow, every turn and tool call a DBOS step.

`DBOSStep` is a layer (place it where `Checkpoint` goes, right after Telemetry): inside a DBOS
workflow it runs each call, with every layer below it, as one DBOS step whose recorded output
carries the result and the call's usage, cost and model. When DBOS recovers the workflow in
another process, a completed step returns that output without running, and the session counts
it like a live call, so its ledger, budget and limits continue where the dead worker stopped.
`workflow_session(agent)` opens the session with the workflow id as its thread id.
`model_queue(model, concurrency=)` registers a DBOS queue, and `DBOSStep(queues=...)` routes
the turns of a model through it: each such turn runs as a child workflow on the queue, so DBOS
caps that model's turns in flight across every process sharing the system database.

Outside a workflow the layer passes calls through, so one stack serves both.
Needs the `dbos` extra: `pip install 'agentmw[dbos]'`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

try:
    from dbos import DBOS, Queue
except ImportError as exc:  # pragma: no cover - exercised by blocking the import in a test
    raise ImportError(
        "agentmw.integrations.dbos needs the DBOS package: pip install 'agentmw[dbos]'"
    ) from exc

from agentmw._validate import check_number
from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext
from agentmw.integrations._dbos_queues import (
    _aqueued_turn,
    _queued_turn,
    _reference,
    _signed,
    model_queue,
    queue_name,
)
from agentmw.middleware.checkpoint import Checkpoint
from agentmw.middleware.telemetry import Telemetry
from agentmw.pricing import call_cost
from agentmw.usage import Usage

if TYPE_CHECKING:
    from agentmw.core.agent import Agent
    from agentmw.core.handoff import Handoff
    from agentmw.core.session.session import Session

__all__ = ["DBOSStep", "StepOutput", "model_queue", "queue_name", "workflow_session"]


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What a DBOS step records for one call: its result and what the session accounts for.

    Attributes:
        result: the call's result (for a streamed call, the list of its chunks).
        usage: the call's usage, or None when it reported none.
        cost_usd: the call's cost.
        model: the model that answered (Fallback or Policy may have switched it).
        attempts: attempts the call took (Retry).
        usage_estimated: True when `usage` was estimated (a stream that reported none).
        provider: the provider an SDK integration named, if any.
    """

    result: Any
    usage: Usage | None
    cost_usd: Decimal
    model: str | None
    attempts: int
    usage_estimated: bool = False
    provider: str | None = None


def _output(call: Call, result: Any) -> StepOutput:
    return StepOutput(
        result,
        call.usage,
        call_cost(call),
        call.model,
        call.attempt,
        call.usage_estimated,
        call.provider,
    )


def _restore(call: Call, out: StepOutput) -> Any:
    """Give `call` what the recorded step says, so the session counts it like the live call."""
    if out.model is not None and out.model != call.model:
        call.set_model(out.model)
    call.usage = out.usage
    call.cost_usd = out.cost_usd
    call.attempt = out.attempts
    call.usage_estimated = out.usage_estimated
    call.provider = out.provider
    call.emit("dbos.replayed", attempts=out.attempts)
    return out.result


def _keyed(call: Call) -> None:
    """Inside the step: the call's idempotency key is the workflow id and the step id.

    DBOS gives a step the same id when it recovers the workflow, so a call that was in flight
    at a crash runs again with the key it had (a function declaring `idempotency_key` gets it).
    """
    if call.idempotency_key is None:
        call.idempotency_key = f"dbos-{DBOS.workflow_id}-{DBOS.step_id}"


def _in_workflow() -> bool:
    """True in workflow code (not inside a step, where DBOS runs nested steps as plain calls)."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


def step_name(call: Call) -> str:
    """The DBOS step name of `call`: DBOS checks it on replay, so a reordered run fails loudly."""
    return f"agentmw.{call.kind}:{call.name}"


class DBOSStep(Middleware):
    """Runs each turn and tool call of a DBOS workflow as a DBOS step (see the module docstring).

    Place it first or right after Telemetry (where `Checkpoint` would go): on recovery a step
    returns its recorded output before any layer below spends or counts, and the session
    still adds its usage and cost to the ledger, so budgets and limits see the whole run. A
    failed call is recorded too: on recovery it raises the same exception again.

    A streamed call in a workflow is one step as well: it runs to its end inside the step,
    and its chunks reach the consumer once the step has recorded them.

    Args:
        queues: model name -> DBOS `Queue` (see `model_queue`): a turn of that model runs as a
            child workflow on the queue, so the queue's concurrency caps the model's turns in
            flight across processes. The turn's function must be importable at module level
            (the queue may run it in another process) and its arguments picklable. The layers
            below this one run in the workflow around the queued model call.
        polling_interval_sec: how often a queued turn polls for its model call's result.
    """

    def __init__(
        self,
        *,
        queues: Mapping[str, Queue] | None = None,
        polling_interval_sec: float = 1.0,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        chosen: dict[str, Queue] = {}
        if queues is not None:
            if not isinstance(queues, Mapping):
                raise TypeError(
                    f"queues must be a mapping of model name -> dbos Queue, "
                    f"got {type(queues).__name__}"
                )
            for model, queue in queues.items():
                if not isinstance(model, str) or not model.strip():
                    raise ValueError(f"queues keys must be model names, got {model!r}")
                if not isinstance(queue, Queue):
                    raise TypeError(
                        f"queues[{model!r}] must be a dbos Queue (see model_queue), "
                        f"got {type(queue).__name__}"
                    )
                chosen[model] = queue
        self.queues: dict[str, Queue] = chosen
        self.polling_interval_sec = check_number(
            "polling_interval_sec", polling_interval_sec, above=0
        )

    def _queued(self, call: Call) -> bool:
        return call.kind == "turn" and call.model is not None and call.model in self.queues

    # -- sync ------------------------------------------------------------------------------
    def handle(self, call: Call, call_next: Next) -> Any:
        if not _in_workflow():
            return call_next(call)
        if self._queued(call):
            return self._run_queued(call, call_next)
        ran = False

        def body() -> StepOutput:
            nonlocal ran
            ran = True
            _keyed(call)
            return _output(call, call_next(call))

        out: StepOutput = DBOS.run_step({"name": step_name(call)}, body)
        return out.result if ran else _restore(call, out)

    def _run_queued(self, call: Call, call_next: Next) -> Any:
        fn = call.fn
        ref = _reference(fn)
        queues, interval = self.queues, self.polling_interval_sec

        def model_call(*args: Any, **kwargs: Any) -> Any:
            queue = queues.get(call.model or "")
            if queue is None:  # a layer below switched to a model without a queue
                return DBOS.run_step({"name": step_name(call)}, fn, *args, **kwargs)
            handle = queue.enqueue(_queued_turn, ref, args, kwargs)
            return handle.get_result(polling_interval_sec=interval)

        call.fn = _signed(model_call, fn)
        try:
            return call_next(call)
        finally:
            call.fn = fn

    # -- async -----------------------------------------------------------------------------
    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        if not _in_workflow():
            return await call_next(call)
        if self._queued(call):
            return await self._arun_queued(call, call_next)
        ran = False

        async def body() -> StepOutput:
            nonlocal ran
            ran = True
            _keyed(call)
            return _output(call, await call_next(call))

        out: StepOutput = await DBOS.run_step_async({"name": step_name(call)}, body)
        return out.result if ran else _restore(call, out)

    async def _arun_queued(self, call: Call, call_next: AsyncNext) -> Any:
        fn = call.fn
        ref = _reference(fn)
        queues, interval = self.queues, self.polling_interval_sec

        async def model_call(*args: Any, **kwargs: Any) -> Any:
            queue = queues.get(call.model or "")
            if queue is None:
                return await DBOS.run_step_async({"name": step_name(call)}, fn, *args, **kwargs)
            handle = await queue.enqueue_async(_aqueued_turn, ref, args, kwargs)
            return await handle.get_result(polling_interval_sec=interval)

        call.fn = _signed(model_call, fn)
        try:
            return await call_next(call)
        finally:
            call.fn = fn

    # -- streams: one step that records the chunks -------------------------------------------
    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        if not _in_workflow():
            yield from call_next(call)
            return
        ran = False

        def body() -> StepOutput:
            nonlocal ran
            ran = True
            _keyed(call)
            return _output(call, list(call_next(call)))

        out: StepOutput = DBOS.run_step({"name": step_name(call)}, body)
        yield from out.result if ran else _restore(call, out)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        if not _in_workflow():
            async for chunk in call_next(call):
                yield chunk
            return
        ran = False

        async def body() -> StepOutput:
            nonlocal ran
            ran = True
            _keyed(call)
            return _output(call, [chunk async for chunk in call_next(call)])

        out: StepOutput = await DBOS.run_step_async({"name": step_name(call)}, body)
        for chunk in out.result if ran else _restore(call, out):
            yield chunk


# -- the session ------------------------------------------------------------------------------
def workflow_session(agent: Agent, *, handoff: Handoff | None = None) -> Session:
    """A session of `agent` for the current DBOS workflow; its thread id is the workflow id.

    Enter it with `with` or `async with` inside the workflow function. The agent's stack must
    hold a `DBOSStep` layer, first or right after Telemetry (layers above it would run again
    on recovery), and no `Checkpoint` (a Checkpoint replay would skip DBOS steps and shift the
    step ids DBOS replays by).

    Raises:
        RuntimeError: not called from workflow code (outside a workflow, or inside a step).
        ValueError: the stack has no `DBOSStep`, a layer other than Telemetry above it, or a
            `Checkpoint`.
    """
    stack = agent.resolved_stack()
    layers = list(stack)
    if not any(isinstance(layer, DBOSStep) for layer in layers):
        raise ValueError(
            "the agent's stack has no DBOSStep layer, so its calls would not be DBOS steps and "
            "a recovered workflow would run them again; add one right after Telemetry, "
            "e.g. stack.insert_before(Checkpoint, DBOSStep()).without(Checkpoint)"
        )
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, DBOSStep))
    above = [layer.name for layer in layers[:first] if not isinstance(layer, Telemetry)]
    if above:
        raise ValueError(
            f"DBOSStep must come first, or right after Telemetry; {', '.join(above)} above it "
            "would run again, outside any step, when DBOS recovers the workflow (a Budget would "
            "charge replayed calls twice, a RateLimit reserve quota for them), and a layer that "
            "awaits there could reorder concurrent steps"
        )
    if any(isinstance(layer, Checkpoint) for layer in layers):
        raise ValueError(
            "the agent's stack has both DBOSStep and Checkpoint; in a DBOS workflow DBOS "
            "records the steps, so remove Checkpoint (stack.without(Checkpoint))"
        )
    if not _in_workflow():
        raise RuntimeError(
            "workflow_session() must be called in a DBOS workflow (a function decorated with "
            "@DBOS.workflow()), outside any step"
        )
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    return agent.session(workflow_id, handoff=handoff)
