"""`InMemorySaver`: checkpoints in a dict (tests, single-process runs that need no durability)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from agentmw.stores._approvals import ApprovalRecord, check_decision, decided_record
from agentmw.stores._checkpoint_records import UNSET, SessionSnapshot, StepRecord, resolved_record
from agentmw.stores._twins import inline

__all__ = ["InMemorySaver"]


class InMemorySaver:
    """A `CheckpointSaver` that keeps everything in process memory (thread-safe).

    A resumed session in the same process replays from it; nothing survives the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, dict[int, StepRecord]] = {}
        self._snapshots: dict[str, SessionSnapshot] = {}
        self._approvals: dict[str, dict[int, ApprovalRecord]] = {}

    def put_step(self, record: StepRecord) -> None:
        """Write (or replace) one step record."""
        with self._lock:
            self._steps.setdefault(record.thread_id, {})[record.step] = record

    def resolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord:
        """Resolve an in-flight (started) step: completed with `result`, or allowed to rerun.

        Raises:
            TypeError, ValueError: see `SqliteSaver.resolve_step`.
        """
        with self._lock:
            held = self._steps.get(thread_id, {})
            record = resolved_record(thread_id, step, held.get(step), result, rerun)
            held[step] = record
            return record

    def get_steps(self, thread_id: str) -> list[StepRecord]:
        """The thread's step records in step order."""
        with self._lock:
            steps = self._steps.get(thread_id, {})
            return [steps[n] for n in sorted(steps)]

    def delete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        """Drop the given steps of a thread (missing ones are ignored)."""
        with self._lock:
            held = self._steps.get(thread_id, {})
            approvals = self._approvals.get(thread_id, {})
            for n in steps:
                held.pop(n, None)
                approvals.pop(n, None)

    def put_snapshot(self, snapshot: SessionSnapshot) -> None:
        """Write (or replace) the thread's session snapshot."""
        with self._lock:
            self._snapshots[snapshot.thread_id] = snapshot

    def get_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        """The thread's latest session snapshot, if any."""
        with self._lock:
            return self._snapshots.get(thread_id)

    def list_threads(self) -> list[str]:
        """Every thread with step records or a snapshot, sorted."""
        with self._lock:
            named = {t for t, s in self._steps.items() if s} | set(self._snapshots)
            return sorted(named)

    def delete_thread(self, thread_id: str) -> None:
        """Drop a thread's records and snapshot."""
        with self._lock:
            self._steps.pop(thread_id, None)
            self._snapshots.pop(thread_id, None)
            self._approvals.pop(thread_id, None)

    def put_approval(self, record: ApprovalRecord) -> None:
        """Write (or replace) the approval of one step."""
        with self._lock:
            self._approvals.setdefault(record.thread_id, {})[record.step] = record

    def get_approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """The thread's approvals (every status) in step order."""
        with self._lock:
            held = self._approvals.get(thread_id, {})
            return [held[n] for n in sorted(held)]

    def list_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]:
        """Every thread's approvals (only the pending ones by default), by thread and step."""
        with self._lock:
            return [
                held[n]
                for thread in sorted(self._approvals)
                for held in (self._approvals[thread],)
                for n in sorted(held)
                if not pending_only or held[n].status == "pending"
            ]

    def resolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord:
        """Decide a pending approval: "approve", "reject" or "edit" (with `arguments`).

        Raises:
            TypeError, ValueError: see `SqliteSaver.resolve_approval`.
        """
        edited = check_decision(decision, arguments, note)
        with self._lock:
            held = self._approvals.get(thread_id, {})
            record = decided_record(thread_id, step, held.get(step), decision, edited, note)
            held[step] = record
            return record

    # Nothing here blocks, so the async twins run inline.
    aput_step = inline(put_step)
    aresolve_step = inline(resolve_step)
    aget_steps = inline(get_steps)
    adelete_steps = inline(delete_steps)
    aput_snapshot = inline(put_snapshot)
    aget_snapshot = inline(get_snapshot)
    alist_threads = inline(list_threads)
    adelete_thread = inline(delete_thread)
    aput_approval = inline(put_approval)
    aget_approvals = inline(get_approvals)
    alist_approvals = inline(list_approvals)
    aresolve_approval = inline(resolve_approval)

    def close(self) -> None:
        """Nothing to release (present so every saver can be closed the same way)."""
