"""`Checkpoint` for streamed calls: the chunks are the step's result.

A live stream is written ahead like any step; its chunks are collected as they pass to the
consumer and stored (JSON) when it ends. A consumer that stops early completes the step with
the chunks it took (what a resume then replays). Replay yields the stored chunks without
calling the function and restores the step's usage and cost. The decisions live in the layer;
the twins differ only in `for` / `async for` and the saver's sync or async methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from agentmw.core.call import Call
from agentmw.core.middleware import AsyncStreamNext, StreamNext, aclose, close
from agentmw.middleware.checkpoint.approvals import rejection

if TYPE_CHECKING:
    from agentmw.middleware.checkpoint.layer import Checkpoint, _Step
    from agentmw.stores._checkpoint_records import StepRecord

__all__: list[str] = []  # the Checkpoint layer's internals


def run_stream(layer: Checkpoint, call: Call, step: _Step, call_next: StreamNext) -> Iterator[Any]:
    saver = layer.saver
    if step.dropped:
        saver.delete_steps(step.thread_id, step.dropped)
    record = step.decision.record
    if record is not None:
        yield from layer._replay(call, step, record)
        return
    try:
        saver.put_step(layer._started(call, step))
    except BaseException:
        step.state.released()
        raise
    layer._committed(call)
    chunks: list[Any] = []
    try:
        inner = _inner(call, step, call_next)
    except BaseException as exc:
        _sync_failed(layer, call, step, exc)
        raise
    try:
        for chunk in inner:
            chunks.append(chunk)
            yield chunk
    except GeneratorExit:  # the consumer stopped early: the step is what it took
        close(inner)  # the layers below settle usage first
        _commit(layer, call, step, chunks)
        raise
    except BaseException as exc:
        close(inner)
        _sync_failed(layer, call, step, exc)
        raise
    close(inner)
    _commit(layer, call, step, chunks)


async def arun_stream(
    layer: Checkpoint, call: Call, step: _Step, call_next: AsyncStreamNext
) -> AsyncIterator[Any]:
    saver = layer.saver
    if step.dropped:
        await saver.adelete_steps(step.thread_id, step.dropped)
    record = step.decision.record
    if record is not None:
        for chunk in layer._replay(call, step, record):
            yield chunk
        return
    try:
        await saver.aput_step(layer._started(call, step))
    except BaseException:
        step.state.released()
        raise
    await layer._acommitted(call)
    chunks: list[Any] = []
    try:
        inner = _inner(call, step, call_next)
    except BaseException as exc:
        await _async_failed(layer, call, step, exc)
        raise
    try:
        async for chunk in inner:
            chunks.append(chunk)
            yield chunk
    except GeneratorExit:
        await aclose(inner)
        await _acommit(layer, call, step, chunks)
        raise
    except BaseException as exc:
        await aclose(inner)
        await _async_failed(layer, call, step, exc)
        raise
    await aclose(inner)
    await _acommit(layer, call, step, chunks)


def _inner(call: Call, step: _Step, call_next: Any) -> Any:
    if step.rejected is not None:  # a human said no: the stream never starts
        raise rejection(call, step.rejected)
    return call_next(call)


def _sync_failed(layer: Checkpoint, call: Call, step: _Step, exc: BaseException) -> None:
    """Record the failed step (and a pending approval: then raise `ApprovalPendingError`)."""
    saver: Any = layer.saver
    failed = layer._failed(call, step, exc)
    if failed is not None:
        saver.put_step(failed)
        layer._committed(call)
    pending = layer._pending(call, step, exc) if layer._durable else None
    if pending is not None:
        saver.put_approval(pending)
        raise layer._pending_error(pending) from exc


async def _async_failed(layer: Checkpoint, call: Call, step: _Step, exc: BaseException) -> None:
    saver: Any = layer.saver
    failed = layer._failed(call, step, exc)
    if failed is not None:
        await saver.aput_step(failed)
        await layer._acommitted(call)
    pending = layer._pending(call, step, exc) if layer._durable else None
    if pending is not None:
        await saver.aput_approval(pending)
        raise layer._pending_error(pending) from exc


def _final(
    layer: Checkpoint, call: Call, step: _Step, chunks: list[Any]
) -> tuple[StepRecord, TypeError | None]:
    """The completed record, or (chunks that cannot be stored) a failed one and the error."""
    try:
        record = layer._completed(call, step, chunks)
    except TypeError as exc:
        return layer._record(call, step, None, True), exc
    call.emit("checkpoint.saved", checkpoint_step=step.decision.step)
    return record, None


def _commit(layer: Checkpoint, call: Call, step: _Step, chunks: list[Any]) -> None:
    record, error = _final(layer, call, step, chunks)
    layer.saver.put_step(record)
    layer._committed(call)
    if error is not None:
        raise error


async def _acommit(layer: Checkpoint, call: Call, step: _Step, chunks: list[Any]) -> None:
    record, error = _final(layer, call, step, chunks)
    await layer.saver.aput_step(record)
    await layer._acommitted(call)
    if error is not None:
        raise error
