"""SIGKILL inside a side-effecting tool, then resume: write-ahead steps and idempotency keys.

A child process runs a checkpointed session whose tool calls a fake payment API (a file that
dedupes on the idempotency key, as real payment APIs do) and then kills itself with SIGKILL.
The test process resumes the thread from the same SQLite file or PostgreSQL tables.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmw import Agent, agent_tool
from agentmw.middleware import Checkpoint, InFlightStepError
from agentmw.stores import PostgresSaver, SqliteSaver
from agentmw.stores._checkpoint_records import derive_idempotency_key

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

WORKER = r"""
import asyncio, os, signal, sys
from agentmw import Agent, agent_tool
from agentmw.middleware import Checkpoint
from agentmw.stores import PostgresSaver, SqliteSaver

store, where, prefix, api, effects, mode = sys.argv[1:7]

def charge(amount, key):
    with open(api, "a") as f:  # the external API: it dedupes on the key
        f.write(f"{key} {amount}\n")
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)  # the process dies with the payment sent

@agent_tool(name="pay", effects=effects)
def pay(amount: int, idempotency_key: str = "") -> str:
    charge(amount, idempotency_key)
    return "unreachable"

@agent_tool(name="pay", effects=effects)
async def apay(amount: int, idempotency_key: str = "") -> str:
    charge(amount, idempotency_key)
    return "unreachable"

@agent_tool
def lookup(q: str) -> str:
    return q.upper()

if store == "sqlite":
    saver = SqliteSaver(where)
else:
    saver = PostgresSaver(where, table_prefix=prefix)
    saver.setup()
agent = Agent("worker", stack=[Checkpoint(saver)])
if mode == "sync":
    with agent.session(thread_id="job"):
        lookup("a")
        pay(10)
else:
    async def main():
        async with agent.session(thread_id="job"):
            lookup("a")
            await apay(10)
    asyncio.run(main())
"""


class Api:
    """The fake payment API's log: every request, and the charges it made (deduped by key)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def requests(self) -> list[str]:
        return self.path.read_text().split("\n")[:-1] if self.path.exists() else []

    def charges(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.requests():
            key, amount = line.split()
            out.setdefault(key, int(amount))
        return out

    def charge(self, amount: int, key: str) -> str:
        with self.path.open("a") as f:
            f.write(f"{key} {amount}\n")
        return f"paid-{key[-4:]}"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "ck.db"), "-"
        return
    conninfo = request.getfixturevalue("pg_conninfo")
    prefix = f"k{uuid.uuid4().hex[:10]}"
    yield "postgres", conninfo, prefix
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        for t in ("checkpoints", "sessions", "schema", "approvals"):
            conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


def killed(args: list[str]) -> None:
    """Run a worker that must die by SIGKILL."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def crash(tmp: Path, store: tuple[str, str, str], api: Api, effects: str, mode: str) -> None:
    script = tmp / "worker.py"
    script.write_text(WORKER)
    killed([sys.executable, str(script), *store, str(api.path), effects, mode])


def open_saver(store: tuple[str, str, str]) -> Any:
    kind, where, prefix = store
    if kind == "sqlite":
        return SqliteSaver(where)
    saver = PostgresSaver(where, table_prefix=prefix)
    saver.setup()
    return saver


async def resume(saver: Any, api: Api, effects: Any, mode: str, **options: Any) -> str:
    ran: list[str] = []

    @agent_tool(name="pay", effects=effects)
    def pay(amount: int, idempotency_key: str = "") -> str:
        ran.append(idempotency_key)
        return api.charge(amount, idempotency_key)

    @agent_tool(name="pay", effects=effects)
    async def apay(amount: int, idempotency_key: str = "") -> str:
        ran.append(idempotency_key)
        return api.charge(amount, idempotency_key)

    @agent_tool
    def lookup(q: str) -> str:
        raise AssertionError("a completed step must replay, not run")

    agent = Agent("worker", stack=[Checkpoint(saver, **options)])
    if mode == "sync":
        with agent.session(thread_id="job"):
            assert lookup("a") == "A"
            return pay(10)
    async with agent.session(thread_id="job"):
        assert lookup("a") == "A"
        return await apay(10)


async def test_a_once_tool_in_flight_at_sigkill_is_not_run_again(
    tmp_path: Path, store: tuple[str, str, str], mode: str
) -> None:
    api = Api(tmp_path / "api.log")
    crash(tmp_path, store, api, "once", mode)
    key = derive_idempotency_key("job", 2, "tool", "pay")
    assert api.requests() == [f"{key} 10"]  # the payment went out before the kill
    saver = open_saver(store)
    held = saver.get_steps("job")
    assert [(r.step, r.name, r.status, r.idempotency_key) for r in held] == [
        (1, "lookup", "completed", derive_idempotency_key("job", 1, "tool", "lookup")),
        (2, "pay", "started", key),
    ]
    with pytest.raises(InFlightStepError) as info:
        await resume(saver, api, "once", mode)
    assert (info.value.step, info.value.name, info.value.idempotency_key) == (2, "pay", key)
    assert api.requests() == [f"{key} 10"]  # nothing ran twice
    # The operator sees the charge at the payment service and marks the step done.
    saver.resolve_step("job", 2, result="paid-by-operator")
    assert await resume(saver, api, "once", mode) == "paid-by-operator"
    assert api.requests() == [f"{key} 10"]
    await _close(saver)


async def test_an_idempotent_tool_in_flight_at_sigkill_reruns_with_its_key(
    tmp_path: Path, store: tuple[str, str, str], mode: str
) -> None:
    api = Api(tmp_path / "api.log")
    crash(tmp_path, store, api, "idempotent", mode)
    key = derive_idempotency_key("job", 2, "tool", "pay")
    saver = open_saver(store)
    assert await resume(saver, api, "idempotent", mode) == f"paid-{key[-4:]}"
    assert api.requests() == [f"{key} 10", f"{key} 10"]  # sent again, with the same key
    assert api.charges() == {key: 10}  # so the API charged once
    held = saver.get_steps("job")
    assert [(r.step, r.status, r.idempotency_key) for r in held][1] == (2, "completed", key)
    await _close(saver)


async def test_on_in_flight_rerun_after_sigkill(
    tmp_path: Path, store: tuple[str, str, str]
) -> None:
    api = Api(tmp_path / "api.log")
    crash(tmp_path, store, api, "once", "sync")
    key = derive_idempotency_key("job", 2, "tool", "pay")
    saver = open_saver(store)
    assert await resume(saver, api, "once", "async", on_in_flight="rerun") == f"paid-{key[-4:]}"
    assert api.charges() == {key: 10}
    await _close(saver)


async def _close(saver: Any) -> None:
    if isinstance(saver, PostgresSaver):
        await saver.aclose()
    else:
        await asyncio.to_thread(saver.close)


STREAM_WORKER = r"""
import asyncio, os, signal, sys
from agentmw import Agent, Usage, agent_turn
from agentmw.middleware import Checkpoint
from agentmw.stores import PostgresSaver, SqliteEventSink, SqliteSaver

store, where, prefix, log, mode = sys.argv[1:6]

def seen(text):
    with open(log, "a") as f:
        f.write(text + "\n")

def usage(chunk):
    return Usage(input_tokens=50, output_tokens=5) if chunk == "." else None

@agent_turn(model="m", name="tell", usage=usage)
def tell(topic: str, idempotency_key: str = ""):
    seen("model " + idempotency_key)
    yield topic
    yield " is"
    os.kill(os.getpid(), signal.SIGKILL)  # mid-stream

@agent_turn(model="m", name="tell", usage=usage)
async def atell(topic: str, idempotency_key: str = ""):
    seen("model " + idempotency_key)
    yield topic
    yield " is"
    os.kill(os.getpid(), signal.SIGKILL)

if store == "sqlite":
    saver = SqliteSaver(where)
    sink = SqliteEventSink(where)
else:
    saver = PostgresSaver(where, table_prefix=prefix)
    saver.setup()
    sink = None
agent = Agent("worker", stack=[Checkpoint(saver)], event_sink=sink)
if mode == "sync":
    with agent.session(thread_id="job"):
        for chunk in tell("sky"):
            seen("chunk " + chunk)
else:
    async def main():
        async with agent.session(thread_id="job"):
            async for chunk in atell("sky"):
                seen("chunk " + chunk)
    asyncio.run(main())
"""


async def test_a_streamed_turn_in_flight_at_sigkill_reruns_then_replays(
    tmp_path: Path, store: tuple[str, str, str], mode: str
) -> None:
    from collections.abc import AsyncIterator

    from agentmw import Usage, agent_turn

    script = tmp_path / "stream_worker.py"
    script.write_text(STREAM_WORKER)
    log = tmp_path / "seen.log"
    killed([sys.executable, str(script), *store, str(log), mode])
    key = derive_idempotency_key("job", 1, "turn", "tell")
    assert log.read_text().split("\n")[:-1] == [f"model {key}", "chunk sky", "chunk  is"]
    saver = open_saver(store)
    (record,) = saver.get_steps("job")
    assert (record.status, record.chunks, record.idempotency_key) == ("started", "[]", key)

    calls: list[str] = []

    def usage(chunk: Any) -> Usage | None:
        return Usage(input_tokens=50, output_tokens=5) if chunk == "." else None

    @agent_turn(model="m", name="tell", usage=usage)
    def tell(topic: str, idempotency_key: str = "") -> Iterator[str]:
        calls.append(idempotency_key)
        yield from (topic, " is", " blue", ".")

    @agent_turn(model="m", name="tell", usage=usage)
    async def atell(topic: str, idempotency_key: str = "") -> AsyncIterator[str]:
        calls.append(idempotency_key)
        for chunk in (topic, " is", " blue", "."):
            yield chunk

    agent = Agent("worker", stack=[Checkpoint(saver)])

    async def run() -> tuple[list[str], dict[str, Any]]:
        if mode == "sync":
            with agent.session(thread_id="job") as s:
                return list(tell("sky")), s.summary()
        async with agent.session(thread_id="job") as s:
            return [c async for c in atell("sky")], s.summary()

    out, _ = await run()  # the turn was in flight: a turn always reruns, with its key
    assert out == ["sky", " is", " blue", "."]
    assert calls == [key]
    again, summary = await run()  # now it replays from the stored chunks
    assert again == out
    assert calls == [key]
    assert summary["usage"]["input_tokens"] == 50
    (record,) = saver.get_steps("job")
    assert (record.status, record.chunks) == ("completed", '["sky"," is"," blue","."]')
    await _close(saver)


TRAIL_WORKER = r"""
import asyncio, os, signal, sys
from agentmw import Agent, agent_tool
from agentmw.middleware import Checkpoint
from agentmw.stores import SqliteEventSink, SqliteSaver

db, mode = sys.argv[1:3]

@agent_tool
def work(n: int) -> int:
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n

@agent_tool(name="work")
async def awork(n: int) -> int:
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n

# A long flush interval: without the commit-time flush nothing would reach the file.
sink = SqliteEventSink(db, flush_interval=60.0)
agent = Agent("worker", stack=[Checkpoint(SqliteSaver(db))], event_sink=sink)
if mode == "sync":
    with agent.session(thread_id="job"):
        for n in (1, 2, 3):
            work(n)
else:
    async def main():
        async with agent.session(thread_id="job"):
            for n in (1, 2, 3):
                await awork(n)
    asyncio.run(main())
"""


def test_a_crash_leaves_a_trail_in_the_event_sink(
    tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentmw.cli import main

    db = tmp_path / "run.db"
    script = tmp_path / "trail_worker.py"
    script.write_text(TRAIL_WORKER)
    killed([sys.executable, str(script), str(db), mode])
    assert main(["events", str(db)]) == 0
    out = capsys.readouterr().out.split("\n")[2:-1]
    trail = [(line.split()[3], line.split()[4]) for line in out]  # (event, step)
    assert trail == [
        ("agent.started", "-"),
        ("tool.called", "1"),
        ("checkpoint.saved", "1"),
        ("tool.completed", "1"),
        ("tool.called", "2"),
        ("checkpoint.saved", "2"),
        ("tool.completed", "2"),
        ("tool.called", "3"),  # flushed with step 3's write-ahead record: the crash point
    ]
