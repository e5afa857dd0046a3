"""Replay bookkeeping for `Checkpoint`: argument fingerprints, result codec, step matching.

Pure and synchronous: one lock-protected object per session decides replay or live.
"""

from __future__ import annotations

import collections.abc as abc
import contextlib
import hashlib
import inspect
import json
import threading
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from agentmw.errors import CheckpointCorruptError
from agentmw.stores._approvals import ApprovalRecord
from agentmw.stores._checkpoint_records import StepRecord

__all__: list[str] = []  # the Checkpoint layer's internals


_ANY: TypeAdapter[Any] = TypeAdapter(Any)
_adapters: dict[Any, TypeAdapter[Any]] = {}


def _type_name(obj: Any) -> str:
    # A stable stand-in for values JSON cannot express (never repr: it may hold an address).
    return f"<{type(obj).__module__}.{type(obj).__qualname__}>"


def fingerprint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A stable hash of the JSON-normalized arguments (key order never matters)."""
    data = to_jsonable_python([list(args), kwargs], fallback=_type_name)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def return_annotation(fn: Any) -> Any:
    """The declared return type of `fn` (through wrapt proxies), or Any when undeclared."""
    target = getattr(fn, "__wrapped__", fn)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to the raw annotation
        hints = {}
    if "return" in hints:
        return hints["return"]
    try:
        raw = inspect.signature(target).return_annotation
    except (TypeError, ValueError):
        return Any
    return Any if raw is inspect.Signature.empty or isinstance(raw, str) else raw


def adapter_for(fn: Any) -> TypeAdapter[Any]:
    annotation = return_annotation(fn)
    if annotation is Any:
        return _ANY
    try:
        cached = _adapters.get(annotation)
    except TypeError:  # an unhashable annotation
        cached = None
    if cached is None:
        try:
            cached = TypeAdapter(annotation)
        except Exception:  # a type pydantic cannot describe: keep it as plain JSON
            cached = _ANY
        with contextlib.suppress(TypeError):
            _adapters[annotation] = cached
    return cached


_STREAMS: frozenset[Any] = frozenset(
    {abc.Iterator, abc.Iterable, abc.Generator, abc.AsyncIterator, abc.AsyncIterable}
    | {abc.AsyncGenerator}
)


def chunks_adapter(fn: Any) -> TypeAdapter[Any]:
    """The adapter of a streamed step's chunks: a list of the annotation's item type
    (`Iterator[X]`, `AsyncIterator[X]`, `Generator[X, ...]`...), else a list of JSON values."""
    annotation = return_annotation(fn)
    args = typing.get_args(annotation)
    item = args[0] if typing.get_origin(annotation) in _STREAMS and args else Any
    key = ("chunks", item)
    try:
        cached = _adapters.get(key)
    except TypeError:
        cached = None
    if cached is None:
        try:
            cached = TypeAdapter(list[item])  # type: ignore[valid-type]
        except Exception:
            cached = TypeAdapter(list[Any])
        with contextlib.suppress(TypeError):
            _adapters[key] = cached
    return cached


def load_chunks(adapter: TypeAdapter[Any], record: StepRecord) -> list[Any]:
    if record.chunks is None:
        raise CheckpointCorruptError(record.thread_id, record.step, "a streamed step has no chunks")
    try:
        chunks: list[Any] = adapter.validate_json(record.chunks)
    except ValidationError as exc:
        raise CheckpointCorruptError(
            record.thread_id, record.step, "chunks do not validate"
        ) from exc
    return chunks


class _ResultMismatch(Exception):  # caught by the Checkpoint layer, never raised out
    """A result that does not match its function's return annotation (it could not be read
    back as that type on resume)."""


def dump_result(adapter: TypeAdapter[Any], value: Any) -> str:
    """The result as JSON text that reads back as the function's return annotation.

    Raises:
        _ResultMismatch: the value is not what the annotation says (checked now, when the step
            is saved, so a resume never meets a record it cannot read).
        TypeError, ValueError: the value (with no annotation) cannot be serialized.
    """
    if adapter is _ANY:
        return _ANY.dump_json(value).decode()
    try:
        text = adapter.dump_json(value, warnings="error").decode()
        adapter.validate_json(text)
    except (PydanticSerializationError, ValidationError) as exc:
        raise _ResultMismatch(type(exc).__name__) from exc
    return text


def load_result(adapter: TypeAdapter[Any], record: StepRecord) -> Any:
    if record.result is None:
        raise CheckpointCorruptError(record.thread_id, record.step, "the step has no result")
    try:
        return adapter.validate_json(record.result)
    except ValidationError as exc:
        raise CheckpointCorruptError(
            record.thread_id, record.step, "result does not validate"
        ) from exc


@dataclass(slots=True)
class Decision:
    """What to do with one call: replay `record`, or run live and save as `step`.

    `resumed` is the consumed record of a step that runs again (failed, in flight at a crash,
    allowed to rerun, or stored without its result): the call keeps its step number and its
    idempotency key.
    """

    step: int
    finished_before: int
    record: StepRecord | None = None
    diverged: StepRecord | None = None
    resumed: StepRecord | None = None


class ReplayState:
    """The records of one thread and which of them this session has consumed.

    Matching rule: a call matches a record with the same kind, name and matching key (the
    argument fingerprint, or the call's `checkpoint_key`).

    - Sequential (no other call of the session in flight): the call must match one of the next
      unconsumed records, those that started together in the original run (the same
      `finished_before` as the first unconsumed one) or, when the next records are tool calls,
      any of that run of tool calls up to the next turn: frameworks run the tool calls of one
      model response in parallel, and which of them started first is timing, not meaning.
      Anything else diverged.
    - Concurrent (another call in flight): order does not matter; the call takes the first
      unconsumed match in step order. A call that matches none runs live, unless a record
      proves the original run had already moved past this point: some record started after
      more steps had finished than have finished now. That call diverged.
    """

    def __init__(self, records: list[StepRecord], approvals: Sequence[ApprovalRecord] = ()) -> None:
        self._lock = threading.Lock()
        # The recorded approvals by step (read-only once built).
        self.approvals: dict[int, ApprovalRecord] = {a.step: a for a in approvals}
        self._pending = list(records)
        self._next = max((r.step for r in records), default=0) + 1
        self._finished = 0
        self._in_flight = 0

    @property
    def pending(self) -> list[StepRecord]:
        with self._lock:
            return list(self._pending)

    def decide(self, kind: str, name: str, fp: str) -> Decision:
        with self._lock:
            finished = self._finished
            pending = self._pending
            if pending and self._in_flight == 0:
                head = pending[0].finished_before
                tools = True  # so far, the group is a run of tool calls
                index = None
                for i, rec in enumerate(pending):
                    tools = tools and rec.kind == "tool"
                    if rec.finished_before != head and not tools:
                        break
                    if rec.kind == kind and rec.name == name and rec.fingerprint == fp:
                        index = i
                        break
                if index is None:
                    return Decision(0, finished, diverged=pending[0])
                return self._take(index, finished)
            for i, rec in enumerate(pending):
                if rec.kind == kind and rec.name == name and rec.fingerprint == fp:
                    return self._take(i, finished)
            for rec in pending:
                if rec.finished_before > finished:
                    return Decision(0, finished, diverged=pending[0])
            step = self._next
            self._next += 1
            self._in_flight += 1
            return Decision(step, finished)

    def _take(self, index: int, finished: int) -> Decision:
        rec = self._pending.pop(index)
        self._in_flight += 1
        if rec.status == "completed" and (rec.result is not None or rec.chunks is not None):
            return Decision(rec.step, finished, rec)
        return Decision(rec.step, finished, resumed=rec)  # it runs again

    def drop_pending(self) -> list[int]:
        """Forget every unconsumed record (on_divergence="rerun"); returns their steps."""
        with self._lock:
            dropped = [r.step for r in self._pending]
            self._pending.clear()
            return dropped

    def finished(self) -> None:
        """A decided call returned, failed or was replayed."""
        with self._lock:
            self._finished += 1
            self._in_flight -= 1

    def released(self) -> None:
        """A decided call will not run (its step was refused): no longer in flight."""
        with self._lock:
            self._in_flight -= 1
