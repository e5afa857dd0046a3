"""Durable sink throughput: events per second through SQLite, JSONL and PostgreSQL sinks.

Measured end to end: `emit` N events, then `flush()`, so the figure includes the writes.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentmw import Event
from agentmw.stores import JsonlEventSink, PostgresEventSink, SqliteEventSink

from ._timing import table

N = 20_000
PG_CONNINFO = os.environ.get(
    "AGENTMW_TEST_PG_CONNINFO", "host=127.0.0.1 port=5432 dbname=test user=postgres"
)


def _events(n: int) -> list[Event]:
    return [
        Event("turn.completed", session_id="bench", role="writer", step=i, model="m", data={"i": i})
        for i in range(n)
    ]


def _measure(make: Callable[[], Any], events: list[Event]) -> tuple[float, float, int]:
    sink = make()
    # Sized so nothing is dropped: this measures the writer, not the drop policy.
    start = time.perf_counter()
    for e in events:
        sink.emit(e)
    emitted = time.perf_counter()
    sink.flush()
    done = time.perf_counter()
    sink.close()
    assert sink.dropped == 0, "benchmark queue overflowed"
    return len(events) / (done - start), (emitted - start) / len(events) * 1e6, sink.written


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def run() -> str:
    events = _events(N)
    rows: list[list[Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("SqliteEventSink", lambda: SqliteEventSink(Path(tmp) / "b.db", max_queue=N)),
            ("JsonlEventSink", lambda: JsonlEventSink(Path(tmp) / "b.jsonl", max_queue=N)),
            (
                "JsonlEventSink(fsync=True)",
                lambda: JsonlEventSink(Path(tmp) / "f.jsonl", fsync=True, max_queue=N),
            ),
        ]
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        if _pg_reachable():
            cases.append(
                (
                    "PostgresEventSink",
                    lambda: PostgresEventSink(PG_CONNINFO, table_prefix=prefix, max_queue=N),
                )
            )
        else:
            notes.append("PostgreSQL skipped: not reachable at 127.0.0.1:5432.")
        for label, make in cases:
            per_s, emit_us, written = _measure(make, events)
            rows.append([label, f"{per_s:,.0f}", f"{emit_us:.2f}", written])
        if _pg_reachable():
            import psycopg

            with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
                for suffix in ("events", "schema"):
                    conn.execute(f"DROP TABLE IF EXISTS {prefix}_{suffix}")
    out = [
        "## Durable sinks",
        "",
        f"{N:,} events emitted then `flush()`ed (batch size 500); events/s includes the writes, "
        "emit µs is the caller's cost per event (a queue put).",
        "",
        table(["sink", "events/s", "emit µs", "written"], rows),
    ]
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"
