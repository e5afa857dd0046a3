"""`SqliteEventSink` and `SqliteUsageSink`: durable sinks in one embedded SQLite file.

Tables (stable; `agentmw` CLI tools read them): `agentmw_schema(component, version)`,
`agentmw_events`, `agentmw_usage`. WAL journal, `synchronous=NORMAL`: a committed batch survives
a process crash; a power loss may lose the last batches but never corrupts the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from agentmw._validate import check_path
from agentmw.events import Event, UsageRecord
from agentmw.stores._batch import check_batching
from agentmw.stores._sink import BatchedSink, UsageTotals
from agentmw.stores._sink_codec import (
    dump_json,
    event_from_mapping,
    totals_from_groups,
    usage_from_mapping,
    utc,
)
from agentmw.stores._sqlite_schema import connect, ensure_schema
from agentmw.stores._twins import offloaded
from agentmw.usage import USAGE_FIELDS

_T = TypeVar("_T")
_EVENT_COLUMNS = (
    "at, name, session_id, role, phase, project_id, step, model, tool, failure_class, detail, data"
)
_USAGE_COLUMNS = (
    "at, session_id, role, project_id, model, kind, name, step, "
    + ", ".join(USAGE_FIELDS)
    + ", cost_usd"
)


class _SqliteBackend:
    """Owns the writing connection; every method runs on the writer thread."""

    def __init__(self, path: str, sql: str, to_row: Any) -> None:
        self._path = path
        self._sql = sql
        self._to_row = to_row
        self._conn: sqlite3.Connection | None = None

    def write(self, items: Sequence[Any]) -> None:
        if self._conn is None:
            self._conn = connect(self._path)
        with self._conn:  # one transaction per batch
            self._conn.executemany(self._sql, [self._to_row(x) for x in items])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _event_row(e: Event) -> tuple[Any, ...]:
    return (
        utc(e.at).isoformat(),
        e.name,
        e.session_id,
        e.role,
        e.phase,
        e.project_id,
        e.step,
        e.model,
        e.tool,
        e.failure_class,
        e.detail,
        dump_json(dict(e.data)),
    )


def _usage_row(r: UsageRecord) -> tuple[Any, ...]:
    u = r.usage
    return (
        utc(r.at).isoformat(),
        r.session_id,
        r.role,
        r.project_id,
        r.model,
        r.kind,
        r.name,
        r.step,
        *(getattr(u, f) for f in USAGE_FIELDS),
        str(r.cost_usd),
    )


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal strings, returned as a string."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += Decimal(value)

    def finalize(self) -> str:
        return str(self.total)


def prepare_reader(conn: sqlite3.Connection) -> None:
    """Set up a connection for the read helpers below (named rows, the exact decimal sum)."""
    conn.row_factory = sqlite3.Row
    # typeshed types aggregates as int-only; sqlite3 accepts any SQLite value.
    conn.create_aggregate("agentmw_decimal_sum", 1, _DecimalSum)  # type: ignore[arg-type]


def _where(session_id: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("", ()) if session_id is None else (" WHERE session_id = ?", (session_id,))


def read_events(conn: sqlite3.Connection, session_id: str | None = None) -> list[Event]:
    """The events in `agentmw_events`, in write order (the sink and the CLI share this)."""
    where, params = _where(session_id)
    sql = f"SELECT {_EVENT_COLUMNS} FROM agentmw_events{where} ORDER BY id"
    return [event_from_mapping(dict(row)) for row in conn.execute(sql, params)]


def read_usage(conn: sqlite3.Connection, session_id: str | None = None) -> list[UsageRecord]:
    """The records in `agentmw_usage`, in write order."""
    where, params = _where(session_id)
    sql = f"SELECT {_USAGE_COLUMNS} FROM agentmw_usage{where} ORDER BY id"
    return [usage_from_mapping(dict(row)) for row in conn.execute(sql, params)]


def read_usage_totals(conn: sqlite3.Connection) -> dict[str, UsageTotals]:
    """Per-model totals of `agentmw_usage` (needs `prepare_reader`)."""
    rows = conn.execute(
        "SELECT model, SUM(kind = 'turn'), SUM(input_tokens), SUM(output_tokens),"
        " agentmw_decimal_sum(cost_usd) FROM agentmw_usage GROUP BY model"
    )
    return totals_from_groups(tuple(r) for r in rows)


class _SqliteSink(BatchedSink[Any]):
    # Set by each subclass: its table's component name, INSERT statement and row builder.
    _component = ""
    _sql = ""
    _to_row: Callable[[Any], tuple[Any, ...]]

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        put_timeout: float = 0.05,
    ) -> None:
        self.path = check_path("path", path)
        if self.path == ":memory:" or self.path.startswith("file:"):
            raise ValueError("path must be a file path (a :memory: database is per connection)")
        check_batching(batch_size, flush_interval, max_queue, put_timeout)  # before any file
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        ensure_schema(self.path, self._component)
        super().__init__(
            _SqliteBackend(self.path, self._sql, self._to_row),
            name=f"sqlite-{self._component}",
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            put_timeout=put_timeout,
        )

    def _query(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        # Read your writes: what this sink queued so far is committed before the read.
        self.flush()
        conn = connect(self.path)
        try:
            prepare_reader(conn)
            return read(conn)
        finally:
            conn.close()


class SqliteEventSink(_SqliteSink):
    """Writes session events to the `agentmw_events` table of a SQLite file.

    `emit` only queues the event; a background thread writes batches (see `docs/sinks.md` for
    the full-queue policy). Several sinks, processes and readers may share one file.

    Args:
        path: the database file (created with its directory when missing).
        batch_size: most events per transaction.
        flush_interval: seconds an event may wait before its batch is written.
        max_queue: bound of the in-memory queue.
        put_timeout: seconds `emit` may block on a full queue before dropping the event.

    Raises:
        SinkSchemaError: the file is not SQLite or holds foreign or other-version tables.
    """

    _component = "events"
    _sql = f"INSERT INTO agentmw_events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    _to_row = staticmethod(_event_row)

    def emit(self, event: Event) -> None:
        """Queue `event` for writing (never raises on a full queue; see `dropped`)."""
        self._put(event)

    def replay(self, session_id: str | None = None) -> list[Event]:
        """The stored events in write order, all or those of one session."""
        return self._query(lambda conn: read_events(conn, session_id))


class SqliteUsageSink(_SqliteSink):
    """Writes one row per `UsageRecord` to the `agentmw_usage` table of a SQLite file.

    Cost is stored as exact decimal text; `totals()` sums it with `Decimal`. Arguments and
    errors as for `SqliteEventSink`.
    """

    _component = "usage"
    _sql = f"INSERT INTO agentmw_usage ({_USAGE_COLUMNS}) VALUES ({', '.join('?' * 15)})"
    _to_row = staticmethod(_usage_row)

    def record(self, record: UsageRecord) -> None:
        """Queue `record` for writing (never raises on a full queue; see `dropped`)."""
        self._put(record)

    def replay(self, session_id: str | None = None) -> list[UsageRecord]:
        """The stored usage records in write order, all or those of one session."""
        return self._query(lambda conn: read_usage(conn, session_id))

    def totals(self) -> dict[str, UsageTotals]:
        """Per model: turns, input/output/total tokens and exact `Decimal` cost."""
        return self._query(read_usage_totals)

    atotals = offloaded(totals)
    """`totals` without blocking the event loop."""
