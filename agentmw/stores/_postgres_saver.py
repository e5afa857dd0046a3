"""`PostgresSaver`: checkpoints in PostgreSQL (psycopg 3), shared by a fleet of replicas.

Tables (stable, named from `table_prefix`, default "agentmw"): `{prefix}_schema(component,
version)`, `{prefix}_checkpoints` (primary key (thread_id, step)) and `{prefix}_sessions`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from agentmw.errors import CheckpointSchemaError
from agentmw.stores._checkpoint_records import (
    SessionSnapshot,
    StepRecord,
    snapshot_from_row,
    step_from_row,
)
from agentmw.stores._sqlite_saver import SCHEMA_VERSION

__all__ = ["PostgresSaver"]

COMPONENT = "checkpoints"
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_STEP_COLUMNS = (
    "kind, name, fingerprint, status, result, usage, cost_usd, finished_before,"
    " started_at, finished_at"
)
_SNAPSHOT_COLUMNS = "session_id, state, iterations, tool_calls, usage, cost_usd, models, updated_at"
_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}_checkpoints ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, status TEXT NOT NULL, result TEXT, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, finished_before INTEGER NOT NULL,"
    " started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL,"
    " PRIMARY KEY (thread_id, step))",
    "CREATE TABLE IF NOT EXISTS {p}_sessions ("
    " thread_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,"
    " iterations INTEGER NOT NULL, tool_calls INTEGER NOT NULL, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, models JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
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


class PostgresSaver:
    """A `CheckpointSaver` in PostgreSQL; every write is one transaction and an upsert.

    Args:
        conninfo: a libpq connection string, a `psycopg_pool.ConnectionPool` (used by the sync
            methods) or an `AsyncConnectionPool` (used by the async methods). With a string the
            saver opens one connection per flavour (sync, async) on first use.
        table_prefix: the table name prefix (a lowercase SQL identifier).

    Call `setup()` (or `asetup()`) once to create the tables; it is idempotent.
    """

    def __init__(self, conninfo: Any, *, table_prefix: str = "agentmw") -> None:
        try:
            import psycopg  # noqa: F401  (an optional dependency: fail at construction)
        except ImportError as exc:
            raise ImportError(
                "PostgresSaver needs psycopg 3: pip install 'agentmw[postgres]'"
            ) from exc
        if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix):
            raise ValueError(f"table_prefix must match {_PREFIX.pattern}, got {table_prefix!r}")
        self.prefix = table_prefix
        self._conninfo: str | None = conninfo if isinstance(conninfo, str) else None
        self._pool = None if isinstance(conninfo, str) else conninfo
        self._lock = threading.Lock()
        self._conn: Any = None
        self._aconn: Any = None
        self._alock: asyncio.Lock | None = None
        p = table_prefix
        self._sql_put = (
            f"INSERT INTO {p}_checkpoints (thread_id, step, {_STEP_COLUMNS}) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id, step) DO"
            " UPDATE SET ("
            + _STEP_COLUMNS
            + ") = ("
            + ", ".join(f"EXCLUDED.{c.strip()}" for c in _STEP_COLUMNS.split(","))
            + ")"
        )
        self._sql_get = (
            f"SELECT step, {_STEP_COLUMNS} FROM {p}_checkpoints WHERE thread_id = %s ORDER BY step"
        )
        self._sql_snap_put = (
            f"INSERT INTO {p}_sessions (thread_id, {_SNAPSHOT_COLUMNS}) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO UPDATE SET ("
            + _SNAPSHOT_COLUMNS
            + ") = ("
            + ", ".join(f"EXCLUDED.{c.strip()}" for c in _SNAPSHOT_COLUMNS.split(","))
            + ")"
        )
        self._sql_snap_get = f"SELECT {_SNAPSHOT_COLUMNS} FROM {p}_sessions WHERE thread_id = %s"

    # -- connections ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        if self._pool is not None:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
            return
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(str(self._conninfo), autocommit=True)
            with self._conn.transaction():
                yield self._conn

    @asynccontextmanager
    async def _atx(self) -> AsyncIterator[Any]:
        if self._pool is not None:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
            return
        import psycopg

        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:  # an asyncio lock: waiting on it never blocks the loop
            if self._aconn is None or self._aconn.closed:
                self._aconn = await psycopg.AsyncConnection.connect(
                    str(self._conninfo), autocommit=True
                )
            async with self._aconn.transaction():
                yield self._aconn

    # -- schema --------------------------------------------------------------------------------
    def _ddl(self) -> list[str]:
        return [d.format(p=self.prefix) for d in _DDL]

    def _check_version(self, row: Any) -> None:
        if row is not None and row[0] != SCHEMA_VERSION:
            raise CheckpointSchemaError(
                f"{self.prefix}_checkpoints",
                f"schema version {row[0]}, this agentmw reads version {SCHEMA_VERSION}",
            )

    def _version_sql(self) -> tuple[str, str]:
        p = self.prefix
        return (
            f"SELECT version FROM {p}_schema WHERE component = %s",
            f"INSERT INTO {p}_schema (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO NOTHING",
        )

    def setup(self) -> None:
        """Create the tables and the version row, or check the version; idempotent.

        Raises:
            CheckpointSchemaError: the tables hold another schema version.
        """
        select, insert = self._version_sql()
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentmw:{self.prefix}",))
            for ddl in self._ddl():
                conn.execute(ddl)
            self._check_version(conn.execute(select, (COMPONENT,)).fetchone())
            conn.execute(insert, (COMPONENT, SCHEMA_VERSION))

    async def asetup(self) -> None:
        """Async twin of `setup`."""
        select, insert = self._version_sql()
        async with self._atx() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentmw:{self.prefix}",)
            )
            for ddl in self._ddl():
                await conn.execute(ddl)
            cur = await conn.execute(select, (COMPONENT,))
            self._check_version(await cur.fetchone())
            await conn.execute(insert, (COMPONENT, SCHEMA_VERSION))

    # -- sync ----------------------------------------------------------------------------------
    def put_step(self, record: StepRecord) -> None:
        """Upsert one step record."""
        with self._tx() as conn:
            conn.execute(self._sql_put, _step_params(record))

    def get_steps(self, thread_id: str) -> list[StepRecord]:
        """The thread's step records in step order."""
        with self._tx() as conn:
            rows = conn.execute(self._sql_get, (thread_id,)).fetchall()
        return [step_from_row(thread_id, r[0], r[1:]) for r in rows]

    def delete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        """Drop the given steps of a thread."""
        with self._tx() as conn:
            conn.execute(
                f"DELETE FROM {self.prefix}_checkpoints WHERE thread_id = %s AND step = ANY(%s)",
                (thread_id, list(steps)),
            )

    def put_snapshot(self, snapshot: SessionSnapshot) -> None:
        """Upsert the thread's session snapshot."""
        with self._tx() as conn:
            conn.execute(self._sql_snap_put, _snapshot_params(snapshot))

    def get_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        """The thread's latest session snapshot, if any."""
        with self._tx() as conn:
            row = conn.execute(self._sql_snap_get, (thread_id,)).fetchone()
        return None if row is None else snapshot_from_row(thread_id, row)

    def list_threads(self) -> list[str]:
        """Every thread with step records or a snapshot, sorted."""
        p = self.prefix
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT thread_id FROM {p}_checkpoints UNION"
                f" SELECT thread_id FROM {p}_sessions ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def delete_thread(self, thread_id: str) -> None:
        """Drop a thread's records and snapshot in one transaction."""
        with self._tx() as conn:
            conn.execute(
                f"DELETE FROM {self.prefix}_checkpoints WHERE thread_id = %s", (thread_id,)
            )
            conn.execute(f"DELETE FROM {self.prefix}_sessions WHERE thread_id = %s", (thread_id,))

    # -- async ---------------------------------------------------------------------------------
    async def aput_step(self, record: StepRecord) -> None:
        async with self._atx() as conn:
            await conn.execute(self._sql_put, _step_params(record))

    async def aget_steps(self, thread_id: str) -> list[StepRecord]:
        async with self._atx() as conn:
            cur = await conn.execute(self._sql_get, (thread_id,))
            rows = await cur.fetchall()
        return [step_from_row(thread_id, r[0], r[1:]) for r in rows]

    async def adelete_steps(self, thread_id: str, steps: Sequence[int]) -> None:
        async with self._atx() as conn:
            await conn.execute(
                f"DELETE FROM {self.prefix}_checkpoints WHERE thread_id = %s AND step = ANY(%s)",
                (thread_id, list(steps)),
            )

    async def aput_snapshot(self, snapshot: SessionSnapshot) -> None:
        async with self._atx() as conn:
            await conn.execute(self._sql_snap_put, _snapshot_params(snapshot))

    async def aget_snapshot(self, thread_id: str) -> SessionSnapshot | None:
        async with self._atx() as conn:
            cur = await conn.execute(self._sql_snap_get, (thread_id,))
            row = await cur.fetchone()
        return None if row is None else snapshot_from_row(thread_id, row)

    async def alist_threads(self) -> list[str]:
        p = self.prefix
        async with self._atx() as conn:
            cur = await conn.execute(
                f"SELECT thread_id FROM {p}_checkpoints UNION"
                f" SELECT thread_id FROM {p}_sessions ORDER BY 1"
            )
            rows = await cur.fetchall()
        return [r[0] for r in rows]

    async def adelete_thread(self, thread_id: str) -> None:
        p = self.prefix
        async with self._atx() as conn:
            await conn.execute(f"DELETE FROM {p}_checkpoints WHERE thread_id = %s", (thread_id,))
            await conn.execute(f"DELETE FROM {p}_sessions WHERE thread_id = %s", (thread_id,))

    def close(self) -> None:
        """Close the connections the saver opened (a pool passed in stays open)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        """Async twin of `close` (also closes the async connection)."""
        self.close()
        if self._aconn is not None:
            await self._aconn.close()
            self._aconn = None

    def __repr__(self) -> str:
        return f"PostgresSaver(table_prefix={self.prefix!r})"
