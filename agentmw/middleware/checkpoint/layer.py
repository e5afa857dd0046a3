"""`Checkpoint`: durable steps; a resumed thread replays completed steps, never re-runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext
from agentmw.errors import ReplayDivergedError
from agentmw.middleware.checkpoint.replay import (
    Decision,
    ReplayState,
    adapter_for,
    dump_result,
    fingerprint,
    load_result,
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
        if not isinstance(saver, CheckpointSaver):
            raise TypeError(f"saver must be a CheckpointSaver, got {type(saver).__name__}")
        if on_divergence not in _DIVERGENCE_MODES:
            raise ValueError(f"on_divergence must be one of raise, rerun; got {on_divergence!r}")
        if not isinstance(store_results, bool):
            raise TypeError(f"store_results must be a bool, got {type(store_results).__name__}")
        self.saver = saver
        self.on_divergence = on_divergence
        self.store_results = store_results
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

    # -- decisions -----------------------------------------------------------------------------
    def _state(self, call: Call) -> ReplayState | None:
        session = call.session
        return None if session is None else session.meta.get(self._key)

    def _decide(self, call: Call, state: ReplayState) -> tuple[Decision, str, list[int]]:
        """Replay or live; in "rerun" mode also the steps to delete from the saver."""
        fp = fingerprint(call.args, call.kwargs)
        decision = state.decide(call.kind, call.name, fp)
        expected = decision.diverged
        if expected is None:
            return decision, fp, []
        if self.on_divergence == "raise":
            raise ReplayDivergedError(
                expected.step,
                _describe(expected.kind, expected.name, expected.fingerprint),
                _describe(call.kind, call.name, fp),
            )
        dropped = state.drop_pending()
        call.emit("checkpoint.diverged", checkpoint_step=expected.step, dropped=len(dropped))
        return state.decide(call.kind, call.name, fp), fp, dropped

    def _replay(self, call: Call, record: StepRecord, state: ReplayState) -> Any:
        result = load_result(adapter_for(call.fn), record)
        call.usage = record.usage
        call.cost_usd = record.cost_usd
        state.finished()
        call.emit("checkpoint.replayed", checkpoint_step=record.step)
        return result

    def _record(
        self, call: Call, d: Decision, fp: str, started: datetime, result: Any, failed: bool
    ) -> StepRecord:
        text: str | None = None
        if self.store_results and not failed:
            try:
                text = dump_result(adapter_for(call.fn), result)
            except Exception as exc:
                raise TypeError(
                    f"checkpoint step {d.step} ({call.kind} {call.name!r}): a result of type "
                    f"{type(result).__qualname__} cannot be stored as JSON; return a "
                    "JSON-serializable value, a pydantic model or a dataclass, or use "
                    "Checkpoint(store_results=False)"
                ) from exc
        session = call.session
        assert session is not None
        assert session.thread_id is not None
        return StepRecord(
            session.thread_id,
            d.step,
            call.kind,
            call.name,
            fp,
            "failed" if failed else "completed",
            text,
            call.usage or _ZERO_USAGE,
            call_cost(call),
            d.finished_before,
            started,
            datetime.now(UTC),
        )

    # -- the paths -----------------------------------------------------------------------------
    def handle(self, call: Call, call_next: Next) -> Any:
        state = self._state(call)
        if state is None:
            return call_next(call)
        decision, fp, dropped = self._decide(call, state)
        if dropped:
            self.saver.delete_steps(call.session.thread_id, dropped)  # type: ignore[union-attr,arg-type]
        if decision.record is not None:
            return self._replay(call, decision.record, state)
        started = datetime.now(UTC)
        try:
            result = call_next(call)
        except Exception:
            state.finished()
            self.saver.put_step(self._record(call, decision, fp, started, None, True))
            raise
        except BaseException:
            state.finished()
            raise
        state.finished()
        self.saver.put_step(self._record(call, decision, fp, started, result, False))
        call.emit("checkpoint.saved", checkpoint_step=decision.step)
        return result

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        state = self._state(call)
        if state is None:
            return await call_next(call)
        decision, fp, dropped = self._decide(call, state)
        if dropped:
            await self.saver.adelete_steps(call.session.thread_id, dropped)  # type: ignore[union-attr,arg-type]
        if decision.record is not None:
            return self._replay(call, decision.record, state)
        started = datetime.now(UTC)
        try:
            result = await call_next(call)
        except Exception:
            state.finished()
            await self.saver.aput_step(self._record(call, decision, fp, started, None, True))
            raise
        except BaseException:
            state.finished()
            raise
        state.finished()
        await self.saver.aput_step(self._record(call, decision, fp, started, result, False))
        call.emit("checkpoint.saved", checkpoint_step=decision.step)
        return result

    # Streamed calls are not checkpointed: chunks are not a result to store; they run live.
    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return call_next(call)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return call_next(call)


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
