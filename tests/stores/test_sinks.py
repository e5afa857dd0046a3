"""Durable sinks: SQLite, JSONL (PostgreSQL in test_postgres_sinks.py) and the batching writer."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentmw import Agent, Event, Usage
from agentmw.events import UsageRecord
from agentmw.stores import JsonlEventSink, SinkSchemaError, SqliteEventSink, SqliteUsageSink
from agentmw.stores._batch import BatchWriter
from agentmw.testing import ScriptedModel

ROOT = Path(__file__).resolve().parents[2]


def make_events(n: int, session_id: str = "s1") -> list[Event]:
    return [
        Event(
            "turn.completed",
            session_id=session_id,
            role="writer",
            project_id=7 if i % 2 else "proj",
            step=i,
            model="m1",
            data={"i": i, "nested": {"ok": True}, "list": [1, "two"]},
            at=datetime(2025, 1, 1, 12, 0, i % 60, i, tzinfo=UTC),
        )
        for i in range(n)
    ]


def make_usage(model: str | None, step: int, cost: str, session_id: str = "s1") -> UsageRecord:
    return UsageRecord(
        session_id, "writer", model, "turn", "draft", step, Usage(10, 5, 2, 1, 1, 0), Decimal(cost)
    )


EVENT_SINKS: dict[str, Callable[..., Any]] = {
    "sqlite": lambda tmp, **kw: SqliteEventSink(tmp / "sinks.db", **kw),
    "jsonl": lambda tmp, **kw: JsonlEventSink(tmp / "events.jsonl", **kw),
}


@pytest.fixture(params=sorted(EVENT_SINKS))
def event_sink_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    factory = EVENT_SINKS[request.param]
    return lambda **kw: factory(tmp_path, **kw)


def test_events_write_close_reopen_and_replay(event_sink_factory: Callable[..., Any]) -> None:
    events = make_events(25) + make_events(3, session_id="s2")
    sink = event_sink_factory(batch_size=7)
    for e in events:
        sink.emit(e)
    sink.close()
    assert sink.written == 28
    assert sink.dropped == 0

    reopened = event_sink_factory()
    assert reopened.replay() == events
    assert reopened.replay("s2") == events[25:]
    assert reopened.replay("nope") == []
    replayed = reopened.replay()[0]
    assert replayed.at.utcoffset() == timedelta(0)
    assert isinstance(replayed.data, dict)
    reopened.emit(Event("more", session_id="s2"))
    assert [e.name for e in reopened.replay("s2")][-1] == "more"  # replay flushes first
    reopened.close()


def test_flush_writes_before_the_interval(event_sink_factory: Callable[..., Any]) -> None:
    sink = event_sink_factory(flush_interval=60.0)
    sink.emit(make_events(1)[0])
    assert sink.flush(timeout=5) is True
    assert sink.written == 1
    sink.close()


def test_interval_writes_without_flush(event_sink_factory: Callable[..., Any]) -> None:
    sink = event_sink_factory(flush_interval=0.01)
    sink.emit(make_events(1)[0])
    deadline = time.monotonic() + 5
    while sink.written == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sink.written == 1
    sink.close()


def test_close_is_idempotent_and_later_items_are_counted(
    event_sink_factory: Callable[..., Any],
) -> None:
    sink = event_sink_factory()
    sink.close()
    sink.close()
    sink.emit(make_events(1)[0])
    assert sink.dropped == 1
    assert sink.flush() is True


def test_usage_write_reopen_replay_and_exact_totals(tmp_path: Path) -> None:
    records = [make_usage("m1", i, "0.1") for i in range(3)] + [make_usage(None, 9, "0.000001")]
    sink = SqliteUsageSink(tmp_path / "u.db")
    for r in records:
        sink.record(r)
    sink.close()

    reopened = SqliteUsageSink(tmp_path / "u.db")
    assert reopened.replay() == records
    totals = reopened.totals()
    assert totals["m1"] == {
        "turns": 3,
        "input_tokens": 30,
        "output_tokens": 15,
        "total_tokens": 45,
        "cost_usd": Decimal("0.3"),  # 0.1 + 0.1 + 0.1 in float is 0.30000000000000004
    }
    assert totals["unknown"]["cost_usd"] == Decimal("0.000001")
    assert isinstance(totals["m1"]["cost_usd"], Decimal)
    reopened.close()


def test_event_and_usage_sinks_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "agentmw.db"
    with SqliteEventSink(path) as events, SqliteUsageSink(path) as usage:
        events.emit(make_events(1)[0])
        usage.record(make_usage("m1", 1, "1.5"))
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agentmw_events", "agentmw_usage", "agentmw_schema"} <= tables
    assert dict(conn.execute("SELECT component, version FROM agentmw_schema")) == {
        "events": 1,
        "usage": 1,
    }
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_foreign_and_mismatched_files_raise_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some text " * 100)
    with pytest.raises(SinkSchemaError, match="not an agentmw sink database"):
        SqliteEventSink(text)

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE agentmw_events (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SinkSchemaError, match="not created by agentmw"):
        SqliteEventSink(foreign)

    old = tmp_path / "old.db"
    SqliteUsageSink(old).close()
    conn = sqlite3.connect(old)
    conn.execute("UPDATE agentmw_schema SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(SinkSchemaError, match="schema version 99"):
        SqliteUsageSink(old)


@pytest.mark.parametrize(
    ("kwargs", "name", "error"),
    [
        ({"batch_size": 0}, "batch_size", ValueError),
        ({"max_queue": 1.5}, "max_queue", TypeError),  # a wrong type is a TypeError
        ({"flush_interval": 0}, "flush_interval", ValueError),
        ({"put_timeout": -1}, "put_timeout", ValueError),
    ],
)
def test_options_are_validated(
    tmp_path: Path, kwargs: dict[str, Any], name: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=name):
        SqliteEventSink(tmp_path / "x.db", **kwargs)
    assert not (tmp_path / "x.db").exists()  # refused before the file was created
    with pytest.raises(TypeError, match="fsync"):
        JsonlEventSink(tmp_path / "x.jsonl", fsync=1)  # type: ignore[arg-type]


def test_jsonl_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlEventSink(path) as sink:
        sink.emit(make_events(1)[0])
    with path.open("a") as f:
        f.write('{"name": "torn", "sess')  # what a crash mid-write leaves behind
    with JsonlEventSink(path) as sink:
        sink.emit(make_events(2)[1])
        assert [e.step for e in sink.replay()] == [0, 1]


# -- the batching writer ----------------------------------------------------------------------


class GatedBackend:
    """Blocks each write until released; records what it wrote."""

    def __init__(self, fail_first: int = 0) -> None:
        self.gate = threading.Event()
        self.batches: list[list[int]] = []
        self.fail_first = fail_first
        self.closed = False

    def write(self, items: Sequence[int]) -> None:
        self.gate.wait(10)
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("disk on fire: secret payload")
        self.batches.append(list(items))

    def close(self) -> None:
        self.closed = True


def test_full_queue_blocks_briefly_then_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    backend = GatedBackend()
    writer = BatchWriter(backend, name="t", batch_size=1, max_queue=4, put_timeout=0.001)
    with caplog.at_level(logging.WARNING, logger="agentmw.sinks"):
        for i in range(100):
            writer.put(i)
            assert writer._queue.qsize() <= 4  # never unbounded
    assert writer.dropped >= 100 - 4 - 1  # at most the queue plus the batch in hand survive
    warnings = [r for r in caplog.records if r.name == "agentmw.sinks"]
    assert len(warnings) == 1
    assert "queue full" in warnings[0].getMessage()
    backend.gate.set()
    assert writer.flush(timeout=5)
    assert writer.written + writer.dropped == 100
    writer.close()
    assert backend.closed


def test_write_errors_are_isolated_counted_and_logged_once_per_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = GatedBackend(fail_first=2)
    backend.gate.set()
    writer = BatchWriter(backend, name="t", batch_size=2, flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="agentmw.sinks"):
        for batch in ([1, 2], [3, 4], [5, 6]):
            for i in batch:
                writer.put(i)
            writer.flush(timeout=5)
    assert writer.write_errors == 2
    assert writer.dropped == 4
    assert backend.batches == [[5, 6]]  # the thread kept running after the failures
    messages = [r.getMessage() for r in caplog.records if r.name == "agentmw.sinks"]
    assert len(messages) == 1
    assert "OSError" in messages[0]
    assert "secret payload" not in messages[0]
    writer.close()


def test_flush_blocks_until_queued_items_are_written() -> None:
    backend = GatedBackend()
    writer = BatchWriter(backend, name="t", batch_size=100, flush_interval=60)
    writer.put(1)
    assert writer.flush(timeout=0.01) is False  # the write is held by the gate
    backend.gate.set()
    assert writer.flush(timeout=5) is True
    assert backend.batches == [[1]]
    writer.close()


# -- with sessions ----------------------------------------------------------------------------


async def test_sessions_write_through_sqlite_sinks(tmp_path: Path, mode: str) -> None:
    events = SqliteEventSink(tmp_path / "a.db", flush_interval=60)
    usage = SqliteUsageSink(tmp_path / "a.db", flush_interval=60)
    agent = Agent("writer", event_sink=events, usage_sink=usage)
    model = ScriptedModel(["hello there", "second reply"], model="m1")
    if mode == "sync":
        with agent.session() as session:
            session.run_turn(model, model="m1", usage=Usage(10, 4))
            session.run_turn(model, model="m1", usage=Usage(10, 4))
        events.close()
        usage.close()
    else:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        async with agent.session() as session:
            await session.arun_turn(model.acall, model="m1", usage=Usage(10, 4))
            await session.arun_turn(model.acall, model="m1", usage=Usage(10, 4))
        await events.aflush()
        assert ticks > 0  # the loop kept running while the sink wrote
        task.cancel()
        await events.aclose()
        await usage.aclose()
    with SqliteEventSink(tmp_path / "a.db") as reader:
        assert [e.name for e in reader.replay(session.id)] == [e.name for e in session.events]
    with SqliteUsageSink(tmp_path / "a.db") as usage_reader:
        assert usage_reader.totals()["m1"]["turns"] == 2


async def test_emit_does_not_block_the_loop_while_the_backend_is_slow() -> None:
    backend = GatedBackend()
    writer = BatchWriter(backend, name="t", batch_size=1, put_timeout=0.05)
    start = time.monotonic()
    for i in range(50):
        writer.put(i)  # the backend is stuck; puts only queue
    assert time.monotonic() - start < 1.0  # coarse: 50 puts cost nothing like 50 writes
    backend.gate.set()
    await asyncio.to_thread(writer.close)
    assert sum(len(b) for b in backend.batches) == 50


# -- crashes and exits ------------------------------------------------------------------------

CRASH_SCRIPT = """
import sys, time
from agentmw import Event
from agentmw.stores import JsonlEventSink, SqliteEventSink
kind, path = sys.argv[1], sys.argv[2]
sink = (SqliteEventSink if kind == "sqlite" else JsonlEventSink)(path, flush_interval=60)
for i in range(200):
    sink.emit(Event("before", session_id="s", step=i, data={"i": i}))
sink.flush()
for i in range(50):
    sink.emit(Event("after", session_id="s", step=i))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_sigkill_loses_at_most_the_unflushed_batch(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("k.db" if kind == "sqlite" else "k.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, kind, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    if kind == "sqlite":
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        reader: Any = SqliteEventSink(path)
    else:
        lines = [x for x in path.read_text().split("\n") if x]
        assert len(lines) >= 200  # every line is whole JSON (replay would skip a torn one)
        reader = JsonlEventSink(path)
    events = reader.replay()
    reader.close()
    before = [e.data["i"] for e in events if e.name == "before"]
    assert before == list(range(200))
    assert len(events) <= 250


def test_atexit_writes_what_is_queued(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from agentmw import Event
        from agentmw.stores import SqliteEventSink
        sink = SqliteEventSink(sys.argv[1], flush_interval=60)
        for i in range(30):
            sink.emit(Event("queued", step=i))
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.db")], check=True, cwd=ROOT)
    with SqliteEventSink(tmp_path / "x.db") as sink:
        assert [e.step for e in sink.replay()] == list(range(30))
