"""`SqliteSaver`: checkpoints in one embedded SQLite file (stdlib sqlite3, WAL).

Tables (stable; the `agentmw` CLI reads them): `agentmw_schema(component, version)` with the row
("checkpoints", 3), `agentmw_checkpoints` (one row per (thread_id, step)), `agentmw_sessions`
(one snapshot per thread) and `agentmw_approvals` (one durable approval per (thread_id, step)).
Version 2 added the `idempotency_key` and `chunks` columns and the "started" and "rerun"
statuses, version 3 the approvals table; a version-1 or version-2 file is upgraded in place when
a saver opens it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from agentmw._validate import check_choice, check_path
from agentmw.errors import CheckpointSchemaError
from agentmw.stores._approvals import (
    ApprovalRecord,
    approval_row,
    check_decision,
    decided_record,
)
from agentmw.stores._checkpoint_records import (
    UNSET,
    SessionSnapshot,
    StepRecord,
    resolved_record,
    snapshot_from_row,
    step_from_row,
    usage_json,
)
from agentmw.stores._sqlite_approvals import (
    APPROVALS_DDL,
    PUT_APPROVAL,
    read_all_approvals,
    read_approval,
    read_approvals,
)
from agentmw.stores._twins import offloaded

__all__ = ["CheckpointSchemaError", "SqliteSaver"]

_T = TypeVar("_T")
SCHEMA_VERSION = 3
COMPONENT = "checkpoints"
_SYNC_MODES = ("NORMAL", "FULL")

_DDL = (
    "CREATE TABLE IF NOT EXISTS agentmw_schema"
    " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS agentmw_checkpoints ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, status TEXT NOT NULL, result TEXT, usage TEXT NOT NULL,"
    " cost_usd TEXT NOT NULL, finished_before INTEGER NOT NULL, started_at TEXT NOT NULL,"
    " finished_at TEXT NOT NULL, idempotency_key TEXT, chunks TEXT,"
    " PRIMARY KEY (thread_id, step))",
    "CREATE TABLE IF NOT EXISTS agentmw_sessions ("
    " thread_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,"
    " iterations INTEGER NOT NULL, tool_calls INTEGER NOT NULL, usage TEXT NOT NULL,"
    " cost_usd TEXT NOT NULL, models TEXT NOT NULL, updated_at TEXT NOT NULL)",
    APPROVALS_DDL,
)
_STEP_COLUMNS = (
    "kind, name, fingerprint, status, result, usage, cost_usd, finished_before,"
    " started_at, finished_at, idempotency_key, chunks"
)
_V1_STEP_COLUMNS = _STEP_COLUMNS.replace(", idempotency_key, chunks", ", NULL, NULL")
# Version 1 -> 2, in the transaction that opens the file: new columns, the same rows.
_MIGRATE_V1 = (
    "ALTER TABLE agentmw_checkpoints ADD COLUMN idempotency_key TEXT",
    "ALTER TABLE agentmw_checkpoints ADD COLUMN chunks TEXT",
)
_SNAPSHOT_COLUMNS = "session_id, state, iterations, tool_calls, usage, cost_usd, models, updated_at"


def step_row(r: StepRecord) -> tuple[Any, ...]:
    return (
        r.thread_id,
        r.step,
        r.kind,
        r.name,
        r.fingerprint,
        r.status,
        r.result,
        usage_json(r.usage),
        str(r.cost_usd),
        r.finished_before,
        r.started_at.isoformat(),
        r.finished_at.isoformat(),
        r.idempotency_key,
        r.chunks,
    )


def snapshot_row(s: SessionSnapshot) -> tuple[Any, ...]:
    return (
        s.thread_id,
        s.session_id,
        s.state,
        s.iterations,
        s.tool_calls,
        usage_json(s.usage),
        str(s.cost_usd),
        json.dumps(s.models, default=str, separators=(",", ":")),
        s.updated_at.isoformat(),
    )


def _columns(conn: sqlite3.Connection) -> str:
    # The CLI opens files read-only, so it may meet a version-1 file no saver has upgraded yet.
    names = {r[1] for r in conn.execute("PRAGMA table_info(agentmw_checkpoints)")}
    return _STEP_COLUMNS if "idempotency_key" in names else _V1_STEP_COLUMNS


def read_steps(conn: sqlite3.Connection, thread_id: str) -> list[StepRecord]:
    """The thread's step records in step order (the saver and the CLI share this)."""
    rows = conn.execute(
        f"SELECT step, {_columns(conn)} FROM agentmw_checkpoints WHERE thread_id = ? ORDER BY step",
        (thread_id,),
    ).fetchall()
    return [step_from_row(thread_id, r[0], r[1:]) for r in rows]


def read_started(conn: sqlite3.Connection) -> list[StepRecord]:
    """Every started (in-flight) step of every thread, by thread and step (the CLI's view)."""
    rows = conn.execute(
        f"SELECT thread_id, step, {_columns(conn)} FROM agentmw_checkpoints"
        " WHERE status = 'started' ORDER BY thread_id, step"
    ).fetchall()
    return [step_from_row(r[0], r[1], r[2:]) for r in rows]


def read_step(conn: sqlite3.Connection, thread_id: str, step: int) -> StepRecord | None:
    """One step record, if the thread has it."""
    row = conn.execute(
        f"SELECT {_columns(conn)} FROM agentmw_checkpoints WHERE thread_id = ? AND step = ?",
        (thread_id, step),
    ).fetchone()
    return None if row is None else step_from_row(thread_id, step, row)


def read_snapshot(conn: sqlite3.Connection, thread_id: str) -> SessionSnapshot | None:
    """The thread's session snapshot, if any."""
    row = conn.execute(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM agentmw_sessions WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    return None if row is None else snapshot_from_row(thread_id, row)


def read_threads(conn: sqlite3.Connection) -> list[str]:
    """Every thread with step records or a snapshot, sorted."""
    rows = conn.execute(
        "SELECT thread_id FROM agentmw_checkpoints UNION"
        " SELECT thread_id FROM agentmw_sessions ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


class SqliteSaver:
    """A `CheckpointSaver` in one SQLite file, safe across threads and processes.

    Args:
        path: the database file (created when missing).
        synchronous: "NORMAL" (WAL default: a crash of the process loses nothing committed; a
            power loss may lose the last steps) or "FULL" (every step is on disk when written).

    Raises:
        TypeError: `path` is not a path, or `synchronous` not a string.
        ValueError: `path` is empty, or `synchronous` is not "NORMAL" or "FULL".
        CheckpointSchemaError: the file holds another checkpoint schema version.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        self.path = check_path("path", path)
        self.synchronous = check_choice("synchronous", synchronous, _SYNC_MODES)
        self._lock = threading.Lock()
        # One connection shared under a lock: SQLite serializes writers anyway.
        self._conn = sqlite3.connect(
            self.path, timeout=5.0, check_same_thread=False, isolation_level=None
        )
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("BEGIN IMMEDIATE")  # two processes creating one file serialize here
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            version = None
            if "agentmw_schema" in tables:
                row = conn.execute(
                    "SELECT version FROM agentmw_schema WHERE component = ?", (COMPONENT,)
                ).fetchone()
                version = None if row is None else row[0]
            if version is not None and version not in (1, 2, SCHEMA_VERSION):
                raise CheckpointSchemaError(
                    self.path,
                    f"agentmw_checkpoints has schema version {version}, this agentmw reads "
                    f"version {SCHEMA_VERSION} (and upgrades versions 1 and 2 in place)",
                )
            if version is None and "agentmw_checkpoints" in tables:
                raise CheckpointSchemaError(
                    self.path, "table agentmw_checkpoints exists but was not created by agentmw"
                )
            if version == 1:
                for ddl in _MIGRATE_V1:
                    conn.execute(ddl)
            if version in (1, 2):  # version 3 adds the approvals table (created below)
                conn.execute(
                    "UPDATE agentmw_schema SET version = ? WHERE component = ?",
                    (SCHEMA_VERSION, COMPONENT),
                )
            for ddl in _DDL:
                conn.execute(ddl)
            conn.execute(
                "INSERT OR IGNORE INTO agentmw_schema (component, version) VALUES (?, ?)",
                (COMPONENT, SCHEMA_VERSION),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            return read(self._conn)

    def put_step(self, record: StepRecord) -> None:
        """Write (or replace) one step record in its own transaction."""
        self._write(
            "INSERT OR REPLACE INTO agentmw_checkpoints (thread_id, step, "
            f"{_STEP_COLUMNS}) VALUES ({', '.join(['?'] * 14)})",
            [step_row(record)],
        )

    def resolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord:
        """Resolve a started (in-flight) step, in one transaction, and return its new record.

        `result=value` marks it completed with that result (JSON; for a streamed step, the list
        of its chunks): a resume replays it. `rerun=True` lets a resume run it again, with the
        same idempotency key.

        Raises:
            TypeError: `rerun` is not a bool, or `result` is not JSON-serializable.
            ValueError: neither or both were given, no such step, or the step is not started.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                record = resolved_record(
                    thread_id, step, read_step(conn, thread_id, step), result, rerun
                )
                conn.execute(
                    "UPDATE agentmw_checkpoints SET status = ?, result = ?, chunks = ?,"
                    " finished_at = ? WHERE thread_id = ? AND step = ?",
                    (
                        record.status,
                        record.result,
                        record.chunks,
                        record.finished_at.isoformat(),
                        thread_id,
                        step,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return record

    def get_steps(self, thread_id: str) -> list[StepRecord]:
        """The thread's step records in step order."""
        return self._read(lambda conn: read_steps(conn, thread_id))

    def delete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        """Drop the given steps of a thread (missing ones are ignored)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("agentmw_checkpoints", "agentmw_approvals"):
                    self._conn.executemany(
                        f"DELETE FROM {table} WHERE thread_id = ? AND step = ?",
                        [(thread_id, n) for n in steps],
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def put_snapshot(self, snapshot: SessionSnapshot) -> None:
        """Write (or replace) the thread's session snapshot."""
        self._write(
            f"INSERT OR REPLACE INTO agentmw_sessions (thread_id, {_SNAPSHOT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [snapshot_row(snapshot)],
        )

    def get_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        """The thread's latest session snapshot, if any."""
        return self._read(lambda conn: read_snapshot(conn, thread_id))

    def list_threads(self) -> list[str]:
        """Every thread with step records or a snapshot, sorted."""
        return self._read(read_threads)

    def delete_thread(self, thread_id: str) -> None:
        """Drop a thread's records and snapshot in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "DELETE FROM agentmw_checkpoints WHERE thread_id = ?", (thread_id,)
                )
                self._conn.execute("DELETE FROM agentmw_sessions WHERE thread_id = ?", (thread_id,))
                self._conn.execute(
                    "DELETE FROM agentmw_approvals WHERE thread_id = ?", (thread_id,)
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- durable approvals -------------------------------------------------------------------
    def put_approval(self, record: ApprovalRecord) -> None:
        """Write (or replace) the approval of one step in its own transaction."""
        self._write(PUT_APPROVAL, [approval_row(record)])

    def get_approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """The thread's approvals (every status) in step order."""
        return self._read(lambda conn: read_approvals(conn, thread_id))

    def list_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]:
        """Every thread's approvals (only the pending ones by default), by thread and step."""
        return self._read(lambda conn: read_all_approvals(conn, pending_only))

    def resolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord:
        """Decide a pending approval in one transaction and return its new record.

        `decision` is "approve" (a resume runs the call), "reject" (a resume raises
        `ApprovalRejectedError` instead) or "edit" (a resume runs the call with `arguments`,
        a mapping of parameter names to JSON values that replaces its arguments).

        Raises:
            TypeError: `decision` or `note` is not a string, or `arguments` is not a mapping
                of names to JSON-serializable values.
            ValueError: `decision` is not approve, reject or edit; "edit" without arguments or
                arguments without "edit"; the thread has no approval at `step`; or it was
                decided already.
        """
        edited = check_decision(decision, arguments, note)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                held = read_approval(conn, thread_id, step)
                record = decided_record(thread_id, step, held, decision, edited, note)
                conn.execute(PUT_APPROVAL, approval_row(record))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return record

    # SQLite blocks on disk (and on the lock): the async twins run in a worker thread.
    aput_step = offloaded(put_step)
    aresolve_step = offloaded(resolve_step)
    aget_steps = offloaded(get_steps)
    adelete_steps = offloaded(delete_steps)
    aput_snapshot = offloaded(put_snapshot)
    aget_snapshot = offloaded(get_snapshot)
    alist_threads = offloaded(list_threads)
    adelete_thread = offloaded(delete_thread)
    aput_approval = offloaded(put_approval)
    aget_approvals = offloaded(get_approvals)
    alist_approvals = offloaded(list_approvals)
    aresolve_approval = offloaded(resolve_approval)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteSaver({self.path!r}, synchronous={self.synchronous!r})"
