"""`Checkpoint`: durable steps; a resumed thread replays completed steps, never re-runs them.

Each live step is written ahead as "started" (with its idempotency key) before the call runs,
and the same record is completed when it returns, so a crash leaves the in-flight step behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_bool, check_choice, check_optional_callable, check_protocol
from agentmw.core.call import LIVE_STREAM, Call
from agentmw.core.loops import arun_plan, run_plan
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext
from agentmw.errors import ApprovalPendingError, InFlightStepError, ReplayDivergedError
from agentmw.middleware.checkpoint.approvals import (
    APPROVAL_MODES,
    apply_arguments,
    pending_approval,
    rejection,
)
from agentmw.middleware.checkpoint.records import snapshot, started_record, step_record
from agentmw.middleware.checkpoint.replay import (
    Decision,
    ReplayState,
    adapter_for,
    chunks_adapter,
    fingerprint,
    load_chunks,
    load_result,
)
from agentmw.middleware.checkpoint.stream import arun_stream, run_stream
from agentmw.stores._approvals import ApprovalRecord, ApprovalSaver
from agentmw.stores._checkpoint_records import (
    CheckpointSaver,
    StepRecord,
    derive_idempotency_key,
)

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["Checkpoint", "InFlightStepError", "ReplayDivergedError"]

_DIVERGENCE_MODES = ("raise", "rerun")
_IN_FLIGHT_MODES = ("raise", "rerun")


def _describe(kind: str, name: str, fp: str) -> str:
    return f"{kind} {name!r} #{fp[:12]}"


class Checkpoint(Middleware):
    """Makes every turn and tool call of a session with a `thread_id` a durable step.

    Place it right after Telemetry: a replayed step returns before anything spends or counts.

    Args:
        saver: where records go (`InMemorySaver`, `SqliteSaver`, `PostgresSaver`).
        key: call -> str: what a resumed call is matched on instead of its argument
            fingerprint (a decorator's `checkpoint_key=` takes precedence for its function).
        on_divergence: "raise" (`ReplayDivergedError`) or "rerun" (drop the thread's remaining
            records and continue live).
        on_in_flight: what a resume does with a step of an `effects="once"` tool that was in
            flight when the run stopped: "raise" (`InFlightStepError`, until the step is
            resolved) or "rerun" (run it again, with the same idempotency key). Pure and
            idempotent steps always rerun with their key.
        store_results: False records each step (name, arguments, usage) without its result;
            such steps run again on resume.
        approvals: how a policy `require_approval` is answered in a checkpointed session:
            "durable" (the default: nothing in this process waits for the answer, so the
            approval is recorded as pending and the run ends with `ApprovalPendingError`) or
            "wait" (async calls wait for `session.provide_input(True/False)` in-process; sync
            calls, which cannot wait, are still recorded). Needs a saver with approvals
            (`ApprovalSaver`: every agentmw saver); with another saver nothing is recorded.

    Raises:
        TypeError: `saver` is not a `CheckpointSaver`, `key` not a callable, or an option not
            a string / bool.
        ValueError: `on_divergence` or `on_in_flight` is not "raise" or "rerun", or
            `approvals` is not "durable" or "wait".
    """

    order_role = "checkpoint"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        saver: CheckpointSaver,
        *,
        key: Callable[[Call], str] | None = None,
        on_divergence: str = "raise",
        on_in_flight: str = "raise",
        store_results: bool = True,
        approvals: str = "durable",
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.saver: CheckpointSaver = check_protocol("saver", saver, CheckpointSaver)
        self.key = check_optional_callable("key", key, "a callable call -> str")
        self.on_divergence = check_choice("on_divergence", on_divergence, _DIVERGENCE_MODES)
        self.on_in_flight = check_choice("on_in_flight", on_in_flight, _IN_FLIGHT_MODES)
        self.store_results = check_bool("store_results", store_results)
        self.approvals = check_choice("approvals", approvals, APPROVAL_MODES)
        self._durable = isinstance(saver, ApprovalSaver)
        self._key = f"checkpoint:{self.name}"

    # -- session hooks -------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        thread_id = session.thread_id
        if thread_id is not None:
            saver: Any = self.saver
            approvals = saver.get_approvals(thread_id) if self._durable else []
            session.meta[self._key] = ReplayState(saver.get_steps(thread_id), approvals)

    async def aopen_session(self, session: Session) -> None:
        thread_id = session.thread_id
        if thread_id is not None:
            saver: Any = self.saver
            approvals = await saver.aget_approvals(thread_id) if self._durable else []
            session.meta[self._key] = ReplayState(await saver.aget_steps(thread_id), approvals)

    def close_session(self, session: Session, error: BaseException | None) -> None:
        if session.thread_id is not None:
            self.saver.put_snapshot(snapshot(session))

    async def aclose_session(self, session: Session, error: BaseException | None) -> None:
        if session.thread_id is not None:
            await self.saver.aput_snapshot(snapshot(session))

    # -- decisions (shared by both paths; only the saver calls differ) ------------------------
    def _match_key(self, call: Call) -> str:
        """What the call is matched on: its `checkpoint_key`, else the argument fingerprint."""
        key_fn, what = call.checkpoint_key, "checkpoint_key"
        if key_fn is None:
            key_fn, what = self.key, "Checkpoint(key=)"
        if key_fn is None:
            return fingerprint(call.args, call.kwargs)
        value = key_fn(call)
        if not isinstance(value, str):
            raise TypeError(
                f"{what} must return a str for {call.kind} {call.name!r}, "
                f"got {type(value).__name__}"
            )
        return "key:" + hashlib.sha256(value.encode()).hexdigest()[:28]

    def _plan(self, call: Call, is_async: bool = False) -> _Step | None:
        """Replay or live for `call`, or None outside a checkpointed session."""
        session = call.session
        state: ReplayState | None = None if session is None else session.meta.get(self._key)
        if state is None or session is None or session.thread_id is None:
            return None
        thread_id = session.thread_id
        fp = self._match_key(call)
        decision = state.decide(call.kind, call.name, fp)
        expected = decision.diverged
        dropped: list[int] = []
        if expected is not None:
            if self.on_divergence == "raise":
                raise ReplayDivergedError(
                    expected.step,
                    _describe(expected.kind, expected.name, expected.fingerprint),
                    _describe(call.kind, call.name, fp),
                )
            # "rerun": the thread's remaining records go, and the call runs live.
            dropped = state.drop_pending()
            call.emit("checkpoint.diverged", checkpoint_step=expected.step, dropped=len(dropped))
            decision = state.decide(call.kind, call.name, fp)
        held = decision.record or decision.resumed
        key = held.idempotency_key if held is not None else None
        if key is None:  # a new step, or one recorded before keys were stored
            key = derive_idempotency_key(thread_id, decision.step, call.kind, call.name)
        call.idempotency_key = key
        resumed = decision.resumed
        if resumed is not None and resumed.status == "started":
            # In flight when the run stopped: it may or may not have taken effect.
            if call.effects == "once" and self.on_in_flight == "raise":
                state.released()
                call.emit("checkpoint.in_flight", checkpoint_step=resumed.step, rerun=False)
                raise InFlightStepError(resumed.step, call.name, key, thread_id=thread_id)
            call.emit("checkpoint.in_flight", checkpoint_step=resumed.step, rerun=True)
        step = _Step(state, decision, fp, thread_id, dropped, datetime.now(UTC))
        if self._durable and decision.record is None:
            self._approval(call, step, is_async)
        return step

    def _approval(self, call: Call, step: _Step, is_async: bool) -> None:
        """How a `require_approval` on this call is answered (see `approvals.py`)."""
        n = step.decision.step
        record = step.state.approvals.get(n) if step.decision.resumed is not None else None
        if record is None or record.status == "pending":
            if not is_async or self.approvals == "durable":
                call.approval = "durable"
            return
        call.emit("checkpoint.approval_resumed", checkpoint_step=n, decision=record.status)
        if record.status == "rejected":
            step.rejected = record
            return
        call.approval = "approved"
        if record.status == "edited" and record.edited_arguments is not None:
            apply_arguments(call, record.edited_arguments)

    def _replay(self, call: Call, step: _Step, record: StepRecord) -> Any:
        """The stored result (for a streamed call: its chunks, as a list)."""
        if call.stream:
            result: Any = load_chunks(chunks_adapter(call.fn), record)
        else:
            result = load_result(adapter_for(call.fn), record)
        call.usage = record.usage
        call.cost_usd = record.cost_usd
        step.state.finished()
        call.emit("checkpoint.replayed", checkpoint_step=record.step)
        return result

    def _failed(self, call: Call, step: _Step, exc: BaseException) -> StepRecord | None:
        """The record of a failed step; None when it was interrupted (its started record
        stays: a resume treats it as in flight)."""
        step.state.finished()
        return self._record(call, step, None, True) if isinstance(exc, Exception) else None

    def _completed(self, call: Call, step: _Step, result: Any) -> StepRecord:
        step.state.finished()
        return self._record(call, step, result, False)

    def _record(self, call: Call, step: _Step, result: Any, failed: bool) -> StepRecord:
        """The completed or failed record (for a streamed call `result` is its chunks)."""
        return step_record(call, step, result, failed, self.store_results)

    def _started(self, call: Call, step: _Step) -> StepRecord:
        """The write-ahead record, committed before the call runs."""
        return started_record(call, step)

    # -- a crash leaves a trail: the session's durable event sink is flushed at each commit ---
    @staticmethod
    def _sink_flush(call: Call) -> Callable[[], Any] | None:
        agent = call.agent
        sink = None if agent is None else agent.event_sink
        flush = getattr(sink, "flush", None)
        return flush if callable(flush) else None

    def _committed(self, call: Call) -> None:
        """After a step record is committed: the events up to it reach the durable sink too."""
        flush = self._sink_flush(call)
        if flush is not None:
            flush()

    async def _acommitted(self, call: Call) -> None:
        flush = self._sink_flush(call)
        if flush is not None:
            await asyncio.to_thread(flush)  # it waits for the sink's writer thread

    # -- the paths: one plan per step, run with the saver's sync or async methods --------------
    def handle(self, call: Call, call_next: Next) -> Any:
        step = self._plan(call)
        if step is None:
            return call_next(call)
        saver: Any = self.saver
        put_approval = saver.put_approval if self._durable else None
        plan = self._run(
            call, step, call_next, saver.delete_steps, saver.put_step, self._committed, put_approval
        )
        return run_plan(plan)

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        step = self._plan(call, is_async=True)
        if step is None:
            return call_next(call)
        saver: Any = self.saver
        put_approval = saver.aput_approval if self._durable else None
        plan = self._run(
            call,
            step,
            call_next,
            saver.adelete_steps,
            saver.aput_step,
            self._acommitted,
            put_approval,
        )
        return arun_plan(plan)

    def _pending(self, call: Call, step: _Step, exc: BaseException) -> ApprovalRecord | None:
        """The pending approval to record for `exc` (an approval nothing waits for), if any."""
        record = pending_approval(call, step.thread_id, step.decision.step, exc)
        if record is not None:
            call.emit("checkpoint.approval_pending", checkpoint_step=record.step, rule=record.rule)
        return record

    @staticmethod
    def _pending_error(record: ApprovalRecord) -> ApprovalPendingError:
        return ApprovalPendingError(
            record.thread_id, record.step, record.kind, record.name, record.rule, record.prompt
        )

    def _run(
        self,
        call: Call,
        step: _Step,
        call_next: Callable[[Call], Any],
        delete_steps: Callable[[str, list[int]], Any],
        put_step: Callable[[StepRecord], Any],
        committed: Callable[[Call], Any],
        put_approval: Callable[[ApprovalRecord], Any] | None = None,
    ) -> Generator[Any, Any, Any]:
        """Replay the step or run it live and record it (a plan: see `run_plan`)."""
        if step.dropped:
            yield delete_steps(step.thread_id, step.dropped)
        if step.decision.record is not None:
            return self._replay(call, step, step.decision.record)
        try:
            yield put_step(self._started(call, step))
        except BaseException:
            step.state.released()
            raise
        yield committed(call)
        try:
            if step.rejected is not None:  # a human said no: the call never runs
                raise rejection(call, step.rejected)
            result = yield call_next(call)
        except BaseException as exc:
            failed = self._failed(call, step, exc)
            if failed is not None:
                yield put_step(failed)
                yield committed(call)
            pending = self._pending(call, step, exc) if put_approval is not None else None
            if pending is not None and put_approval is not None:
                yield put_approval(pending)  # after the failed step: the resume reruns it
                raise self._pending_error(pending) from exc
            raise
        try:
            record = self._completed(call, step, result)
        except TypeError:
            # The result cannot be stored: the step stays resumable, as one that runs again.
            yield put_step(self._record(call, step, None, True))
            yield committed(call)
            raise
        yield put_step(record)
        call.emit("checkpoint.saved", checkpoint_step=step.decision.step)
        yield committed(call)
        return result

    # Streamed calls: the same step, with the chunks as its result (see `stream.py`).
    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        if getattr(call.fn, LIVE_STREAM, False):
            return call_next(call)  # live objects, not data: nothing to store or replay
        step = self._plan(call)
        if step is None:
            return call_next(call)
        return run_stream(self, call, step, call_next)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        if getattr(call.fn, LIVE_STREAM, False):
            return call_next(call)
        step = self._plan(call, is_async=True)
        if step is None:
            return call_next(call)
        return arun_stream(self, call, step, call_next)


@dataclass(slots=True)
class _Step:
    """One checkpointed step on its way: the replay decision and what its record needs."""

    state: ReplayState
    decision: Decision
    fp: str
    thread_id: str
    dropped: list[int]
    started: datetime
    rejected: ApprovalRecord | None = None
