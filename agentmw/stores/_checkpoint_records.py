"""Checkpoint records, the `CheckpointSaver` protocol, and the row codec the savers share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, runtime_checkable

from agentmw.errors import CheckpointCorruptError
from agentmw.usage import Usage

__all__ = [
    "CheckpointCorruptError",
    "CheckpointSaver",
    "SessionSnapshot",
    "StepRecord",
]

StepStatus = Literal["started", "completed", "failed", "rerun"]
STATUSES = frozenset({"started", "completed", "failed", "rerun"})


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One checkpointed turn or tool call of a thread.

    Attributes:
        thread_id: the durable thread.
        step: the step number inside the thread (unique per thread, 1-based).
        kind: "turn" or "tool".
        name: the turn's or tool's name.
        fingerprint: a stable hash of the JSON-normalized arguments (or of the call's
            `checkpoint_key`): what a resumed call is matched on.
        status: "started" (written before the call runs: in flight, or interrupted by a
            crash), "completed", "failed" (runs again on resume) or "rerun" (an in-flight step
            an operator allowed to run again, with `resolve_step(..., rerun=True)`).
        result: the result as JSON text; None when no result was stored.
        usage: the step's usage.
        cost_usd: the step's cost.
        finished_before: steps of the session that had finished when this one started.
        started_at: when the call started (UTC).
        finished_at: when the call returned (UTC); `started_at` for a started step.
        idempotency_key: the key the call ran with (the same on every resume of the step).
        chunks: a streamed step's chunks as a JSON array ("[]" while it is in flight); None
            for a step that returned one result.
    """

    thread_id: str
    step: int
    kind: str
    name: str
    fingerprint: str
    status: StepStatus
    result: str | None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    finished_before: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    idempotency_key: str | None = None
    chunks: str | None = None


def derive_idempotency_key(thread_id: str, step: int, kind: str, name: str) -> str:
    """The idempotency key of a step: the same for the step on every resume of the thread."""
    text = f"{thread_id}\x00{step}\x00{kind}\x00{name}"
    return "amw-" + hashlib.sha256(text.encode()).hexdigest()[:32]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def resolved_record(
    thread_id: str, step: int, record: StepRecord | None, result: Any, rerun: Any
) -> StepRecord:
    """The record that resolves an in-flight step: completed with `result`, or "rerun".

    Raises:
        TypeError: `rerun` is not a bool, or `result` cannot be stored as JSON (a streamed
            step's result must be a list of chunks).
        ValueError: neither or both of `result` and `rerun=True` were given, the thread has no
            such step, or the step is not in flight.
    """
    if not isinstance(rerun, bool):
        raise TypeError(f"rerun must be a bool, got {type(rerun).__name__}")
    if rerun == (result is not UNSET):
        raise ValueError("resolve_step needs exactly one of result=... or rerun=True")
    if record is None:
        raise ValueError(f"thread {thread_id!r} has no step {step}")
    if record.status != "started":
        raise ValueError(
            f"step {step} of thread {thread_id!r} is {record.status}, not in flight (started):"
            " only a started step can be resolved"
        )
    now = datetime.now(UTC)
    if rerun:
        return replace(record, status="rerun", finished_at=now)
    from pydantic_core import to_json

    if record.chunks is not None and not isinstance(result, list):
        raise TypeError(
            f"step {step} of thread {thread_id!r} is a streamed step: result must be the list"
            f" of its chunks, got {type(result).__name__}"
        )
    try:
        text = to_json(result).decode()
    except Exception as exc:
        raise TypeError(f"result must be JSON-serializable, got {type(result).__name__}") from exc
    if record.chunks is not None:
        return replace(record, status="completed", chunks=text, finished_at=now)
    return replace(record, status="completed", result=text, finished_at=now)


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """The totals of a thread's latest session, written when the session closes.

    Attributes:
        thread_id: the durable thread.
        session_id: the id of the session that wrote it.
        state: the session's lifecycle state ("completed", "failed", ...).
        iterations: turns run (replayed turns included).
        tool_calls: tool calls run (replayed ones included).
        usage: the usage total.
        cost_usd: the cost total.
        models: per-model totals (`ModelTotals.as_dict()` with the cost as a string).
        updated_at: when it was written (UTC).
    """

    thread_id: str
    session_id: str
    state: str
    iterations: int
    tool_calls: int
    usage: Usage
    cost_usd: Decimal
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@runtime_checkable
class CheckpointSaver(Protocol):
    """Where the `Checkpoint` layer keeps step records and session snapshots.

    Writes are idempotent: writing a record for an existing (thread_id, step) replaces it.
    Every method has an async twin named with an `a` prefix.
    """

    def put_step(self, record: StepRecord) -> None: ...
    def resolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord: ...
    def get_steps(self, thread_id: str) -> list[StepRecord]: ...
    def delete_steps(self, thread_id: str, steps: Sequence[int]) -> None: ...
    def put_snapshot(self, snapshot: SessionSnapshot) -> None: ...
    def get_snapshot(self, thread_id: str) -> SessionSnapshot | None: ...
    def list_threads(self) -> list[str]: ...
    def delete_thread(self, thread_id: str) -> None: ...
    async def aput_step(self, record: StepRecord) -> None: ...
    async def aresolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord: ...
    async def aget_steps(self, thread_id: str) -> list[StepRecord]: ...
    async def adelete_steps(self, thread_id: str, steps: Sequence[int]) -> None: ...
    async def aput_snapshot(self, snapshot: SessionSnapshot) -> None: ...
    async def aget_snapshot(self, thread_id: str) -> SessionSnapshot | None: ...
    async def alist_threads(self) -> list[str]: ...
    async def adelete_thread(self, thread_id: str) -> None: ...


# -- the row codec shared by the SQL savers ---------------------------------------------------
def usage_json(usage: Usage) -> str:
    return json.dumps(usage.as_dict(), separators=(",", ":"))


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def _usage(value: Any) -> Usage:
    data = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(data, dict):
        raise TypeError("usage is not an object")
    return Usage.from_dict(data)


def step_from_row(thread_id: str, step: int, row: Sequence[Any]) -> StepRecord:
    """Build a record from (kind, name, fingerprint, status, result, usage, cost, finished_before,
    started_at, finished_at, idempotency_key, chunks); any bad field raises
    `CheckpointCorruptError`."""
    kind, name, fingerprint, status, result, usage, cost, before, started, finished = row[:10]
    key, chunks = row[10:12] if len(row) >= 12 else (None, None)
    try:
        if kind not in ("turn", "tool") or status not in STATUSES:
            raise ValueError("unknown kind or status")
        if not isinstance(name, str) or not isinstance(fingerprint, str):
            raise TypeError("name or fingerprint is not text")
        if key is not None and not isinstance(key, str):
            raise TypeError("idempotency_key is not text")
        if result is not None and not isinstance(result, str):
            result = json.dumps(result)  # PostgreSQL JSONB comes back decoded
        if chunks is not None and not isinstance(chunks, str):
            chunks = json.dumps(chunks)
        return StepRecord(
            thread_id,
            int(step),
            kind,
            name,
            fingerprint,
            status,
            result,
            _usage(usage),
            Decimal(str(cost)),
            int(before),
            _ts(started),
            _ts(finished),
            key,
            chunks,
        )
    except (TypeError, ValueError, InvalidOperation, json.JSONDecodeError) as exc:
        raise CheckpointCorruptError(thread_id, step, type(exc).__qualname__) from exc


def snapshot_from_row(thread_id: str, row: Sequence[Any]) -> SessionSnapshot:
    """Build a snapshot from (session_id, state, iterations, tool_calls, usage, cost, models,
    updated_at); any bad field raises `CheckpointCorruptError`."""
    session_id, state, iterations, tool_calls, usage, cost, models, updated = row
    try:
        models_data = json.loads(models) if isinstance(models, (str, bytes)) else models
        if not isinstance(models_data, dict):
            raise TypeError("models is not an object")
        return SessionSnapshot(
            thread_id,
            str(session_id),
            str(state),
            int(iterations),
            int(tool_calls),
            _usage(usage),
            Decimal(str(cost)),
            models_data,
            _ts(updated),
        )
    except (TypeError, ValueError, InvalidOperation, json.JSONDecodeError) as exc:
        raise CheckpointCorruptError(thread_id, None, type(exc).__qualname__) from exc
