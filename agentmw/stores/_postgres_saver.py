"""`PostgresSaver`: checkpoints in PostgreSQL (psycopg 3), shared by a fleet of replicas.

Tables (stable, named from `table_prefix`, default "agentmw"): `{prefix}_schema(component,
version)`, `{prefix}_checkpoints` (primary key (thread_id, step)), `{prefix}_sessions` and
`{prefix}_approvals` (primary key (thread_id, step)). Schema version 3 (version 2 added the
`idempotency_key` and `chunks` columns, version 3 the approvals table); `setup()` upgrades
version-1 and version-2 tables in place.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from agentmw.errors import CheckpointSchemaError
from agentmw.stores._approvals import (
    APPROVAL_COLUMNS,
    ApprovalRecord,
    approval_from_row,
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
)
from agentmw.stores._postgres_plan import Plan, Statement, adrive, drive
from agentmw.stores._postgres_schema import check_conninfo, check_prefix, require_psycopg
from agentmw.stores._sqlite_saver import SCHEMA_VERSION

__all__ = ["PostgresSaver"]

T = TypeVar("T")
COMPONENT = "checkpoints"
_STEP_COLUMNS = (
    "kind, name, fingerprint, status, result, usage, cost_usd, finished_before,"
    " started_at, finished_at, idempotency_key, chunks"
)
_SNAPSHOT_COLUMNS = "session_id, state, iterations, tool_calls, usage, cost_usd, models, updated_at"
_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}_checkpoints ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, status TEXT NOT NULL, result TEXT, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, finished_before INTEGER NOT NULL,"
    " started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL,"
    " idempotency_key TEXT, chunks TEXT, PRIMARY KEY (thread_id, step))",
    "CREATE TABLE IF NOT EXISTS {p}_sessions ("
    " thread_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,"
    " iterations INTEGER NOT NULL, tool_calls INTEGER NOT NULL, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, models JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}_approvals ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " rule TEXT NOT NULL, prompt TEXT NOT NULL, arguments JSONB NOT NULL, status TEXT NOT NULL,"
    " edited_arguments JSONB, note TEXT, requested_at TIMESTAMPTZ NOT NULL,"
    " decided_at TIMESTAMPTZ, PRIMARY KEY (thread_id, step))",
)


def _step_params(r: StepRecord) -> tuple[Any, ...]:
    return (
        r.thread_id,
        r.step,
        r.kind,
        r.name,
        r.fingerprint,
        r.status,
        r.result,
        json.dumps(r.usage.as_dict()),
        r.cost_usd,
        r.finished_before,
        r.started_at,
        r.finished_at,
        r.idempotency_key,
        r.chunks,
    )


def _snapshot_params(s: SessionSnapshot) -> tuple[Any, ...]:
    return (
        s.thread_id,
        s.session_id,
        s.state,
        s.iterations,
        s.tool_calls,
        json.dumps(s.usage.as_dict()),
        s.cost_usd,
        json.dumps(s.models, default=str),
        s.updated_at,
    )


def _upsert(table: str, key: str, columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    marks = ", ".join(["%s"] * (len(key.split(",")) + len(names)))
    excluded = ", ".join(f"EXCLUDED.{c}" for c in names)
    return (
        f"INSERT INTO {table} ({key}, {columns}) VALUES ({marks})"
        f" ON CONFLICT ({key}) DO UPDATE SET ({columns}) = ({excluded})"
    )


class PostgresSaver:
    """A `CheckpointSaver` in PostgreSQL; every write is one transaction and an upsert.

    Args:
        conninfo: a libpq connection string, a `psycopg_pool.ConnectionPool` (used by the sync
            methods) or an `AsyncConnectionPool` (used by the async methods). With a string the
            saver opens one connection per flavour (sync, async) on first use.
        table_prefix: the table name prefix (a lowercase SQL identifier).

    Call `setup()` (or `asetup()`) once to create the tables; it is idempotent.

    Raises:
        TypeError: `conninfo` is neither a string nor a pool, or `table_prefix` is not a string.
        ValueError: libpq cannot parse `conninfo`, or `table_prefix` is not an identifier.
    """

    def __init__(self, conninfo: Any, *, table_prefix: str = "agentmw") -> None:
        self._psycopg = require_psycopg("PostgresSaver needs")
        conninfo = check_conninfo(conninfo, pools=True)
        self.prefix = p = check_prefix(table_prefix)
        self._conninfo: str | None = conninfo if isinstance(conninfo, str) else None
        self._pool = None if isinstance(conninfo, str) else conninfo
        self._lock = threading.Lock()
        self._conn: Any = None
        self._aconn: Any = None
        self._alock = asyncio.Lock()  # binds to a loop only when a caller has to wait
        self._sql_put = _upsert(f"{p}_checkpoints", "thread_id, step", _STEP_COLUMNS)
        self._sql_get = (
            f"SELECT step, {_STEP_COLUMNS} FROM {p}_checkpoints WHERE thread_id = %s ORDER BY step"
        )
        self._sql_snap_put = _upsert(f"{p}_sessions", "thread_id", _SNAPSHOT_COLUMNS)
        self._sql_snap_get = f"SELECT {_SNAPSHOT_COLUMNS} FROM {p}_sessions WHERE thread_id = %s"
        self._sql_approval_put = _upsert(f"{p}_approvals", "thread_id, step", APPROVAL_COLUMNS)

    # -- running a plan in one transaction -----------------------------------------------------
    def _run(self, plan: Plan[T]) -> T:
        if self._pool is not None:
            with self._pool.connection() as conn, conn.transaction():
                return drive(conn, plan)
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._psycopg.connect(str(self._conninfo), autocommit=True)
            with self._conn.transaction():
                return drive(self._conn, plan)

    async def _arun(self, plan: Plan[T]) -> T:
        if self._pool is not None:
            async with self._pool.connection() as conn, conn.transaction():
                return await adrive(conn, plan)
        async with self._alock:  # an asyncio lock: waiting on it never blocks the loop
            if self._aconn is None or self._aconn.closed:
                connect = self._psycopg.AsyncConnection.connect
                self._aconn = await connect(str(self._conninfo), autocommit=True)
            async with self._aconn.transaction():
                return await adrive(self._aconn, plan)

    # -- plans: each operation once ------------------------------------------------------------
    def _setup(self) -> Plan[None]:
        p = self.prefix
        yield Statement("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentmw:{p}",))
        for ddl in _DDL:
            yield Statement(ddl.format(p=p))
        select = f"SELECT version FROM {p}_schema WHERE component = %s"
        rows = yield Statement(select, (COMPONENT,), fetch=True)
        if rows and rows[0][0] not in (1, 2, SCHEMA_VERSION):
            raise CheckpointSchemaError(
                f"{p}_checkpoints",
                f"schema version {rows[0][0]}, this agentmw reads version {SCHEMA_VERSION}"
                " (and upgrades versions 1 and 2 in place)",
            )
        if rows and rows[0][0] == 1:  # in this transaction, under the advisory lock
            for column in ("idempotency_key", "chunks"):
                yield Statement(
                    f"ALTER TABLE {p}_checkpoints ADD COLUMN IF NOT EXISTS {column} TEXT"
                )
        if rows and rows[0][0] in (1, 2):  # the approvals table was created above
            yield Statement(
                f"UPDATE {p}_schema SET version = %s WHERE component = %s",
                (SCHEMA_VERSION, COMPONENT),
            )
        yield Statement(
            f"INSERT INTO {p}_schema (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO NOTHING",
            (COMPONENT, SCHEMA_VERSION),
        )

    def _put_step(self, record: StepRecord) -> Plan[None]:
        yield Statement(self._sql_put, _step_params(record))

    def _resolve_step(self, thread_id: str, step: int, result: Any, rerun: Any) -> Plan[StepRecord]:
        rows = yield Statement(
            f"SELECT {_STEP_COLUMNS} FROM {self.prefix}_checkpoints"
            " WHERE thread_id = %s AND step = %s FOR UPDATE",
            (thread_id, step),
            fetch=True,
        )
        held = step_from_row(thread_id, step, rows[0]) if rows else None
        record = resolved_record(thread_id, step, held, result, rerun)
        yield Statement(
            f"UPDATE {self.prefix}_checkpoints SET status = %s, result = %s, chunks = %s,"
            " finished_at = %s WHERE thread_id = %s AND step = %s",
            (record.status, record.result, record.chunks, record.finished_at, thread_id, step),
        )
        return record

    def _get_steps(self, thread_id: str) -> Plan[list[StepRecord]]:
        rows = yield Statement(self._sql_get, (thread_id,), fetch=True)
        return [step_from_row(thread_id, r[0], r[1:]) for r in rows]

    def _delete_steps(self, thread_id: str, steps: Sequence[int]) -> Plan[None]:
        for table in ("checkpoints", "approvals"):
            yield Statement(
                f"DELETE FROM {self.prefix}_{table} WHERE thread_id = %s AND step = ANY(%s)",
                (thread_id, list(steps)),
            )

    def _put_snapshot(self, snapshot: SessionSnapshot) -> Plan[None]:
        yield Statement(self._sql_snap_put, _snapshot_params(snapshot))

    def _get_snapshot(self, thread_id: str) -> Plan[SessionSnapshot | None]:
        rows = yield Statement(self._sql_snap_get, (thread_id,), fetch=True)
        return snapshot_from_row(thread_id, rows[0]) if rows else None

    def _list_threads(self) -> Plan[list[str]]:
        p = self.prefix
        union = f"SELECT thread_id FROM {p}_checkpoints UNION SELECT thread_id FROM {p}_sessions"
        rows = yield Statement(f"{union} ORDER BY 1", fetch=True)
        return [r[0] for r in rows]

    def _delete_thread(self, thread_id: str) -> Plan[None]:
        yield Statement(f"DELETE FROM {self.prefix}_checkpoints WHERE thread_id = %s", (thread_id,))
        yield Statement(f"DELETE FROM {self.prefix}_sessions WHERE thread_id = %s", (thread_id,))
        yield Statement(f"DELETE FROM {self.prefix}_approvals WHERE thread_id = %s", (thread_id,))

    def _put_approval(self, record: ApprovalRecord) -> Plan[None]:
        row = approval_row(record)
        yield Statement(self._sql_approval_put, row)

    def _get_approvals(self, thread_id: str) -> Plan[list[ApprovalRecord]]:
        rows = yield Statement(
            f"SELECT step, {APPROVAL_COLUMNS} FROM {self.prefix}_approvals"
            " WHERE thread_id = %s ORDER BY step",
            (thread_id,),
            fetch=True,
        )
        return [approval_from_row(thread_id, r[0], r[1:]) for r in rows]

    def _list_approvals(self, pending_only: bool) -> Plan[list[ApprovalRecord]]:
        where = " WHERE status = 'pending'" if pending_only else ""
        rows = yield Statement(
            f"SELECT thread_id, step, {APPROVAL_COLUMNS} FROM {self.prefix}_approvals{where}"
            " ORDER BY thread_id, step",
            fetch=True,
        )
        return [approval_from_row(r[0], r[1], r[2:]) for r in rows]

    def _resolve_approval(
        self, thread_id: str, step: int, decision: str, edited: Any, note: str | None
    ) -> Plan[ApprovalRecord]:
        rows = yield Statement(
            f"SELECT {APPROVAL_COLUMNS} FROM {self.prefix}_approvals"
            " WHERE thread_id = %s AND step = %s FOR UPDATE",
            (thread_id, step),
            fetch=True,
        )
        held = approval_from_row(thread_id, step, rows[0]) if rows else None
        record = decided_record(thread_id, step, held, decision, edited, note)
        yield from self._put_approval(record)
        return record

    # -- sync ----------------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the tables and the version row, or check the version; idempotent.

        Raises:
            CheckpointSchemaError: the tables hold another schema version.
        """
        self._run(self._setup())

    def put_step(self, record: StepRecord) -> None:
        """Upsert one step record."""
        self._run(self._put_step(record))

    def resolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord:
        """Resolve a started (in-flight) step in one transaction (see `SqliteSaver`).

        Raises:
            TypeError, ValueError: see `SqliteSaver.resolve_step`.
        """
        return self._run(self._resolve_step(thread_id, step, result, rerun))

    def get_steps(self, thread_id: str) -> list[StepRecord]:
        """The thread's step records in step order."""
        return self._run(self._get_steps(thread_id))

    def delete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        """Drop the given steps of a thread."""
        self._run(self._delete_steps(thread_id, steps))

    def put_snapshot(self, snapshot: SessionSnapshot) -> None:
        """Upsert the thread's session snapshot."""
        self._run(self._put_snapshot(snapshot))

    def get_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        """The thread's latest session snapshot, if any."""
        return self._run(self._get_snapshot(thread_id))

    def list_threads(self) -> list[str]:
        """Every thread with step records or a snapshot, sorted."""
        return self._run(self._list_threads())

    def delete_thread(self, thread_id: str) -> None:
        """Drop a thread's records and snapshot in one transaction."""
        self._run(self._delete_thread(thread_id))

    def put_approval(self, record: ApprovalRecord) -> None:
        """Upsert the approval of one step."""
        self._run(self._put_approval(record))

    def get_approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """The thread's approvals (every status) in step order."""
        return self._run(self._get_approvals(thread_id))

    def list_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]:
        """Every thread's approvals (only the pending ones by default), by thread and step."""
        return self._run(self._list_approvals(pending_only))

    def resolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord:
        """Decide a pending approval in one transaction (see `SqliteSaver.resolve_approval`).

        Raises:
            TypeError, ValueError: see `SqliteSaver.resolve_approval`.
        """
        edited = check_decision(decision, arguments, note)
        return self._run(self._resolve_approval(thread_id, step, decision, edited, note))

    def close(self) -> None:
        """Close the connections the saver opened (a pool passed in stays open)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- async ---------------------------------------------------------------------------------
    async def asetup(self) -> None:
        """Async twin of `setup`."""
        await self._arun(self._setup())

    async def aput_step(self, record: StepRecord) -> None:
        """Async twin of `put_step`."""
        await self._arun(self._put_step(record))

    async def aresolve_step(
        self, thread_id: str, step: int, *, result: Any = UNSET, rerun: bool = False
    ) -> StepRecord:
        """Async twin of `resolve_step`."""
        return await self._arun(self._resolve_step(thread_id, step, result, rerun))

    async def aget_steps(self, thread_id: str) -> list[StepRecord]:
        """Async twin of `get_steps`."""
        return await self._arun(self._get_steps(thread_id))

    async def adelete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        """Async twin of `delete_steps`."""
        await self._arun(self._delete_steps(thread_id, steps))

    async def aput_snapshot(self, snapshot: SessionSnapshot) -> None:
        """Async twin of `put_snapshot`."""
        await self._arun(self._put_snapshot(snapshot))

    async def aget_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        """Async twin of `get_snapshot`."""
        return await self._arun(self._get_snapshot(thread_id))

    async def alist_threads(self) -> list[str]:
        """Async twin of `list_threads`."""
        return await self._arun(self._list_threads())

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of `delete_thread`."""
        await self._arun(self._delete_thread(thread_id))

    async def aput_approval(self, record: ApprovalRecord) -> None:
        """Async twin of `put_approval`."""
        await self._arun(self._put_approval(record))

    async def aget_approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """Async twin of `get_approvals`."""
        return await self._arun(self._get_approvals(thread_id))

    async def alist_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]:
        """Async twin of `list_approvals`."""
        return await self._arun(self._list_approvals(pending_only))

    async def aresolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord:
        """Async twin of `resolve_approval`."""
        edited = check_decision(decision, arguments, note)
        return await self._arun(self._resolve_approval(thread_id, step, decision, edited, note))

    async def aclose(self) -> None:
        """Async twin of `close` (also closes the async connection)."""
        await asyncio.to_thread(self.close)  # it waits for the lock a sync call may hold
        aconn, self._aconn = self._aconn, None
        if aconn is not None:
            await aconn.close()

    def __repr__(self) -> str:
        return f"PostgresSaver(table_prefix={self.prefix!r})"
