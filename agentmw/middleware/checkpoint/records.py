"""The records `Checkpoint` writes: a step's write-ahead and final records, the session snapshot."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentmw.core.call import Call
from agentmw.middleware.checkpoint.replay import (
    _ResultMismatch,
    adapter_for,
    chunks_adapter,
    dump_result,
    return_annotation,
)
from agentmw.pricing import call_cost
from agentmw.stores._checkpoint_records import SessionSnapshot, StepRecord
from agentmw.usage import ZERO_USAGE as _ZERO_USAGE

if TYPE_CHECKING:
    from agentmw.core.session.session import Session
    from agentmw.middleware.checkpoint.layer import _Step

__all__: list[str] = []  # the Checkpoint layer's internals

_ZERO = Decimal(0)


def step_record(call: Call, step: _Step, result: Any, failed: bool, store: bool) -> StepRecord:
    """The completed or failed record (for a streamed call `result` is its chunks)."""
    d = step.decision
    text: str | None = None
    if store and not failed:
        adapter = chunks_adapter(call.fn) if call.stream else adapter_for(call.fn)
        try:
            text = dump_result(adapter, result)
        except _ResultMismatch as exc:
            annotation = return_annotation(call.fn)
            shown = getattr(annotation, "__qualname__", None) or repr(annotation)
            raise TypeError(
                f"checkpoint step {d.step} ({call.kind} {call.name!r}) returned a "
                f"{type(result).__qualname__}, but its return annotation is {shown}: a "
                "resumed run reads the stored result back as the annotation, so return "
                "what it says or correct it"
            ) from exc
        except Exception as exc:
            raise TypeError(
                f"checkpoint step {d.step} ({call.kind} {call.name!r}): a result of type "
                f"{type(result).__qualname__} cannot be stored as JSON; return a "
                "JSON-serializable value, a pydantic model or a dataclass, or use "
                "Checkpoint(store_results=False)"
            ) from exc
    result_text, chunks_text = (None, text) if call.stream else (text, None)
    return StepRecord(
        step.thread_id,
        d.step,
        call.kind,
        call.name,
        step.fp,
        "failed" if failed else "completed",
        result_text,
        call.usage or _ZERO_USAGE,
        call_cost(call),
        d.finished_before,
        step.started,
        datetime.now(UTC),
        call.idempotency_key,
        chunks_text,
    )


def started_record(call: Call, step: _Step) -> StepRecord:
    """The write-ahead record, committed before the call runs."""
    d = step.decision
    return StepRecord(
        step.thread_id,
        d.step,
        call.kind,
        call.name,
        step.fp,
        "started",
        None,
        _ZERO_USAGE,
        _ZERO,
        d.finished_before,
        step.started,
        step.started,
        call.idempotency_key,
        "[]" if call.stream else None,
    )


def snapshot(session: Session) -> SessionSnapshot:
    assert session.thread_id is not None
    models = {
        name: {**totals.usage.as_dict(), "calls": totals.calls, "cost_usd": str(totals.cost_usd)}
        for name, totals in session.ledger.per_model().items()
    }
    return SessionSnapshot(
        session.thread_id,
        session.id,
        session.state.value,
        session.iterations,
        session.tool_calls,
        session.usage,
        session.cost_usd,
        models,
    )
