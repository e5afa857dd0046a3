"""Checkpointed steps per second: SqliteSaver (NORMAL, FULL), PostgresSaver, techrevati-runtime."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentmw import Agent, Usage
from agentmw.middleware import Checkpoint
from agentmw.stores import PostgresSaver, SqliteSaver, StepRecord

from ._timing import table

PAYLOAD = {
    "text": "x" * 400,
    "hits": [{"url": f"https://example.com/{i}", "rank": i} for i in range(5)],
}
PG = os.environ.get(
    "AGENTMW_TEST_PG_CONNINFO", "host=127.0.0.1 port=5432 dbname=test user=postgres"
)


def _tool(q: int) -> dict[str, Any]:
    return PAYLOAD


def _layer_rate(saver: Any, n: int) -> float:
    agent = Agent("bench", stack=[Checkpoint(saver)])
    with agent.session(thread_id=uuid.uuid4().hex) as s:
        start = time.perf_counter()
        for i in range(n):
            s.run_tool("search", _tool, i)
        return n / (time.perf_counter() - start)


def _record(thread: str, i: int) -> StepRecord:
    import json

    return StepRecord(thread, i, "tool", "search", "f" * 32, "completed", json.dumps(PAYLOAD),
                      Usage(input_tokens=10), Decimal("0.001"), i - 1)  # fmt: skip


def _write_rate(put: Any, n: int) -> float:
    start = time.perf_counter()
    for i in range(1, n + 1):
        put(i)
    return n / (time.perf_counter() - start)


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def run() -> str:
    rows: list[list[Any]] = []
    notes: list[str] = []
    n = 1000
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("NORMAL", "FULL"):
            saver = SqliteSaver(Path(tmp) / f"a{sync}.db", synchronous=sync)
            layer = _layer_rate(saver, n)
            t = uuid.uuid4().hex
            raw = _write_rate(lambda i, s=saver, t=t: s.put_step(_record(t, i)), n)
            saver.close()
            rows.append([f"agentmw SqliteSaver ({sync})", f"{layer:,.0f}", f"{raw:,.0f}"])
        try:
            from techrevati.runtime.checkpoint import SqliteSaver as TRSaver

            tr = TRSaver(Path(tmp) / "tr.db")
            t = uuid.uuid4().hex
            raw = _write_rate(lambda i: tr.put_step(t, f"step-{i}", PAYLOAD), n)
            tr.close()
            rows.append(["techrevati-runtime 0.4 SqliteSaver.put_step", "n/a", f"{raw:,.0f}"])
        except ImportError:
            notes.append("techrevati-runtime is not installed (`pip install -e '.[bench]'`).")
    if _pg_up():
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        pg = PostgresSaver(PG, table_prefix=prefix)
        pg.setup()
        try:
            layer = _layer_rate(pg, 300)
            t = uuid.uuid4().hex
            raw = _write_rate(lambda i: pg.put_step(_record(t, i)), 300)
            rows.append(["agentmw PostgresSaver (local)", f"{layer:,.0f}", f"{raw:,.0f}"])
        finally:
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                for tbl in ("checkpoints", "sessions", "schema"):
                    conn.execute(f"DROP TABLE IF EXISTS {prefix}_{tbl}")
            pg.close()
    else:
        notes.append("PostgreSQL is not reachable at 127.0.0.1:5432: PostgresSaver skipped.")
    head = [
        "## Checkpoint",
        "",
        "Steps per second, one thread, a ~700-byte JSON result per step. *Layer*: a tool call",
        "through `Checkpoint` in a session (fingerprint, serialize, one transaction per step).",
        "*Saver write*: the saver's own write of the same payload, one commit per step",
        "(techrevati-runtime leaves SQLite at its default `synchronous=FULL`).",
        "",
    ]
    return "\n".join([*head, table(["store", "layer steps/s", "saver writes/s"], rows), "", *notes])
