"""`PostgresEventSink` and `PostgresUsageSink`: durable sinks a fleet of replicas can share.

Tables are `{table_prefix}_events`, `{table_prefix}_usage` and `{table_prefix}_schema` (prefix
`agentmw` by default). Each batch is one `executemany` in one transaction on a connection owned
by the writer thread; a failed batch drops that connection and the next batch reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentmw.events import Event, UsageRecord
from agentmw.stores._batch import check_batching
from agentmw.stores._postgres_schema import (
    check_conninfo,
    check_prefix,
    ensure_schema,
    require_psycopg,
)
from agentmw.stores._sink import BatchedSink, UsageTotals
from agentmw.stores._sink_codec import (
    dump_json,
    event_from_mapping,
    totals_from_groups,
    usage_from_mapping,
    utc,
)
from agentmw.stores._twins import offloaded
from agentmw.usage import USAGE_FIELDS

if TYPE_CHECKING:
    import psycopg

_EVENT_COLUMNS = (
    "at, name, session_id, role, phase, project_id, step, model, tool, failure_class, detail, data"
)
_EVENT_VALUES = "%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb"
_USAGE_COLUMNS = (
    "at, session_id, role, project_id, model, kind, name, step, "
    + ", ".join(USAGE_FIELDS)
    + ", cost_usd"
)
_USAGE_VALUES = "%s, %s, %s, %s::jsonb, " + ", ".join(["%s"] * 11)


def _json_or_null(value: Any) -> str | None:
    return None if value is None else dump_json(value)


def _event_row(e: Event) -> tuple[Any, ...]:
    return (
        utc(e.at),
        e.name,
        e.session_id,
        e.role,
        e.phase,
        _json_or_null(e.project_id),
        e.step,
        e.model,
        e.tool,
        e.failure_class,
        e.detail,
        dump_json(dict(e.data)),
    )


def _usage_row(r: UsageRecord) -> tuple[Any, ...]:
    return (
        utc(r.at),
        r.session_id,
        r.role,
        _json_or_null(r.project_id),
        r.model,
        r.kind,
        r.name,
        r.step,
        *(getattr(r.usage, f) for f in USAGE_FIELDS),
        r.cost_usd,
    )


class _PostgresSink(BatchedSink[Any]):
    # Set by each subclass: its table's component name, columns, placeholders and row builder.
    _component = ""
    _columns = ""
    _values = ""
    _to_row: Callable[[Any], tuple[Any, ...]]

    def __init__(
        self,
        conninfo: str,
        *,
        table_prefix: str = "agentmw",
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        put_timeout: float = 0.05,
    ) -> None:
        self.conninfo: str = check_conninfo(conninfo)
        self.table_prefix = check_prefix(table_prefix)
        check_batching(batch_size, flush_interval, max_queue, put_timeout)
        self.table = f"{table_prefix}_{self._component}"
        self._ready = False
        self._ready_lock = threading.Lock()
        insert = f"INSERT INTO {self.table} ({self._columns}) VALUES ({self._values})"
        backend = _PostgresBackend(self, insert)
        super().__init__(
            backend,
            name=f"postgres-{self._component}",
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            put_timeout=put_timeout,
        )

    def _connect(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = require_psycopg().connect(self.conninfo, autocommit=True)
        return conn

    def _ensure(self, conn: psycopg.Connection[Any]) -> None:
        if not self._ready:
            ensure_schema(conn, self.table_prefix, self._component)
            with self._ready_lock:
                self._ready = True

    def setup(self) -> None:
        """Create the tables and version row when missing (idempotent; also done on first use).

        Raises:
            SinkSchemaError: the table exists but is foreign or of another schema version.
        """
        with self._connect() as conn:
            ensure_schema(conn, self.table_prefix, self._component)
        with self._ready_lock:
            self._ready = True

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        self.flush()  # read your writes
        with self._connect() as conn:
            self._ensure(conn)
            return conn.cursor(row_factory=dict_row).execute(sql.encode(), params).fetchall()

    def _select(self, session_id: str | None) -> list[dict[str, Any]]:
        where = "" if session_id is None else " WHERE session_id = %s"
        params: tuple[Any, ...] = () if session_id is None else (session_id,)
        return self._query(f"SELECT {self._columns} FROM {self.table}{where} ORDER BY id", params)


class _PostgresBackend:
    """Owns the writing connection; runs on the writer thread only."""

    def __init__(self, sink: _PostgresSink, sql: str) -> None:
        self._sink = sink
        self._sql = sql.encode()
        self._conn: psycopg.Connection[Any] | None = None

    def write(self, items: Sequence[Any]) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._sink._connect()
            self._sink._ensure(self._conn)
            rows = [self._sink._to_row(x) for x in items]
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.executemany(self._sql, rows)
        except Exception:
            self.close()  # a broken connection must not poison the next batch
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresEventSink(_PostgresSink):
    """Writes session events to `{table_prefix}_events` in PostgreSQL (psycopg 3).

    Args:
        conninfo: a libpq connection string or URL (checked now; connections open on first use).
        table_prefix: prefix of the table names (a lowercase SQL identifier).
        batch_size: most events per transaction.
        flush_interval: seconds an event may wait before its batch is written.
        max_queue: bound of the in-memory queue.
        put_timeout: seconds `emit` may block on a full queue before dropping the event.
    """

    _component = "events"
    _columns = _EVENT_COLUMNS
    _values = _EVENT_VALUES
    _to_row = staticmethod(_event_row)

    def emit(self, event: Event) -> None:
        """Queue `event` for writing (never raises on a full queue; see `dropped`)."""
        self._put(event)

    def replay(self, session_id: str | None = None) -> list[Event]:
        """The stored events in write order, all or those of one session."""
        return [event_from_mapping(row) for row in self._select(session_id)]


class PostgresUsageSink(_PostgresSink):
    """Writes usage records to `{table_prefix}_usage` (cost as exact NUMERIC).

    Arguments as for `PostgresEventSink`.
    """

    _component = "usage"
    _columns = _USAGE_COLUMNS
    _values = _USAGE_VALUES
    _to_row = staticmethod(_usage_row)

    def record(self, record: UsageRecord) -> None:
        """Queue `record` for writing (never raises on a full queue; see `dropped`)."""
        self._put(record)

    def replay(self, session_id: str | None = None) -> list[UsageRecord]:
        """The stored usage records in write order, all or those of one session."""
        return [usage_from_mapping(row) for row in self._select(session_id)]

    def totals(self) -> dict[str, UsageTotals]:
        """Per model: turns, input/output/total tokens and exact `Decimal` cost."""
        rows = self._query(
            "SELECT model, COUNT(*) FILTER (WHERE kind = 'turn') AS turns,"
            " SUM(input_tokens) AS i, SUM(output_tokens) AS o, SUM(cost_usd) AS c"
            f" FROM {self.table} GROUP BY model"
        )
        return totals_from_groups((r["model"], r["turns"], r["i"], r["o"], r["c"]) for r in rows)

    atotals = offloaded(totals)
    """`totals` without blocking the event loop."""
