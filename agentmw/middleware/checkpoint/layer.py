"""`Checkpoint`: durable steps; a resumed thread replays completed steps, never re-runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_bool, check_choice, check_protocol
from agentmw.core.call import Call
from agentmw.core.loops import arun_plan, run_plan
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext
from agentmw.errors import ReplayDivergedError
from agentmw.middleware.checkpoint.replay import (
    Decision,
    ReplayState,
    _ResultMismatch,
    adapter_for,
    dump_result,
    fingerprint,
    load_result,
    return_annotation,
)
from agentmw.pricing import call_cost
from agentmw.stores._checkpoint_records import CheckpointSaver, SessionSnapshot, StepRecord
from agentmw.usage import ZERO_USAGE as _ZERO_USAGE

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["Checkpoint", "ReplayDivergedError"]

_DIVERGENCE_MODES = ("raise", "rerun")


def _describe(kind: str, name: str, fp: str) -> str:
    return f"{kind} {name!r} #{fp[:12]}"


class Checkpoint(Middleware):
    """Makes every turn and tool call of a session with a `thread_id` a durable step.

    Place it right after Telemetry: a replayed step returns before anything spends or counts.

    Args:
        saver: where records go (`InMemorySaver`, `SqliteSaver`, `PostgresSaver`).
        on_divergence: "raise" (`ReplayDivergedError`) or "rerun" (drop the thread's remaining
            records and continue live).
        store_results: False records each step (name, arguments, usage) without its result;
            such steps run again on resume.
    """

    order_role = "checkpoint"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        saver: CheckpointSaver,
        *,
        on_divergence: str = "raise",
        store_results: bool = True,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.saver: CheckpointSaver = check_protocol("saver", saver, CheckpointSaver)
        self.on_divergence = check_choice("on_divergence", on_divergence, _DIVERGENCE_MODES)
        self.store_results = check_bool("store_results", store_results)
        self._key = f"checkpoint:{self.name}"

    # -- session hooks -------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        if session.thread_id is not None:
            session.meta[self._key] = ReplayState(self.saver.get_steps(session.thread_id))

    async def aopen_session(self, session: Session) -> None:
        if session.thread_id is not None:
            session.meta[self._key] = ReplayState(await self.saver.aget_steps(session.thread_id))

    def close_session(self, session: Session, error: BaseException | None) -> None:
        if session.thread_id is not None:
            self.saver.put_snapshot(_snapshot(session))

    async def aclose_session(self, session: Session, error: BaseException | None) -> None:
        if session.thread_id is not None:
            await self.saver.aput_snapshot(_snapshot(session))

    # -- decisions (shared by both paths; only the saver calls differ) ------------------------
    def _plan(self, call: Call) -> _Step | None:
        """Replay or live for `call`, or None outside a checkpointed session."""
        session = call.session
        state: ReplayState | None = None if session is None else session.meta.get(self._key)
        if state is None or session is None or session.thread_id is None:
            return None
        fp = fingerprint(call.args, call.kwargs)
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
        return _Step(state, decision, fp, session.thread_id, dropped, datetime.now(UTC))

    def _replay(self, call: Call, step: _Step, record: StepRecord) -> Any:
        result = load_result(adapter_for(call.fn), record)
        call.usage = record.usage
        call.cost_usd = record.cost_usd
        step.state.finished()
        call.emit("checkpoint.replayed", checkpoint_step=record.step)
        return result

    def _failed(self, call: Call, step: _Step, exc: BaseException) -> StepRecord | None:
        """The record of a failed step; None when it was interrupted (nothing to keep)."""
        step.state.finished()
        return self._record(call, step, None, True) if isinstance(exc, Exception) else None

    def _completed(self, call: Call, step: _Step, result: Any) -> StepRecord:
        step.state.finished()
        return self._record(call, step, result, False)

    def _record(self, call: Call, step: _Step, result: Any, failed: bool) -> StepRecord:
        d = step.decision
        text: str | None = None
        if self.store_results and not failed:
            try:
                text = dump_result(adapter_for(call.fn), result)
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
        return StepRecord(
            step.thread_id,
            d.step,
            call.kind,
            call.name,
            step.fp,
            "failed" if failed else "completed",
            text,
            call.usage or _ZERO_USAGE,
            call_cost(call),
            d.finished_before,
            step.started,
            datetime.now(UTC),
        )

    # -- the paths: one plan per step, run with the saver's sync or async methods --------------
    def handle(self, call: Call, call_next: Next) -> Any:
        step = self._plan(call)
        if step is None:
            return call_next(call)
        saver = self.saver
        return run_plan(self._run(call, step, call_next, saver.delete_steps, saver.put_step))

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        step = self._plan(call)
        if step is None:
            return call_next(call)
        saver = self.saver
        return arun_plan(self._run(call, step, call_next, saver.adelete_steps, saver.aput_step))

    def _run(
        self,
        call: Call,
        step: _Step,
        call_next: Callable[[Call], Any],
        delete_steps: Callable[[str, list[int]], Any],
        put_step: Callable[[StepRecord], Any],
    ) -> Generator[Any, Any, Any]:
        """Replay the step or run it live and record it (a plan: see `run_plan`)."""
        if step.dropped:
            yield delete_steps(step.thread_id, step.dropped)
        if step.decision.record is not None:
            return self._replay(call, step, step.decision.record)
        try:
            result = yield call_next(call)
        except BaseException as exc:
            failed = self._failed(call, step, exc)
            if failed is not None:
                yield put_step(failed)
            raise
        yield put_step(self._completed(call, step, result))
        call.emit("checkpoint.saved", checkpoint_step=step.decision.step)
        return result

    # Streamed calls are not checkpointed: chunks are not a result to store; they run live.
    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return call_next(call)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return call_next(call)


@dataclass(slots=True)
class _Step:
    """One checkpointed step on its way: the replay decision and what its record needs."""

    state: ReplayState
    decision: Decision
    fp: str
    thread_id: str
    dropped: list[int]
    started: datetime


def _snapshot(session: Session) -> SessionSnapshot:
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
