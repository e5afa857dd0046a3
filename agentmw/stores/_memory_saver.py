"""`InMemorySaver`: checkpoints in a dict (tests, single-process runs that need no durability)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

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
            for n in steps:
                held.pop(n, None)

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

    # Nothing here blocks, so the async twins run inline.
    aput_step = inline(put_step)
    aresolve_step = inline(resolve_step)
    aget_steps = inline(get_steps)
    adelete_steps = inline(delete_steps)
    aput_snapshot = inline(put_snapshot)
    aget_snapshot = inline(get_snapshot)
    alist_threads = inline(list_threads)
    adelete_thread = inline(delete_thread)

    def close(self) -> None:
        """Nothing to release (present so every saver can be closed the same way)."""
