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
        for t in ("checkpoints", "sessions", "schema"):
            conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


def crash(tmp: Path, store: tuple[str, str, str], api: Api, effects: str, mode: str) -> None:
    script = tmp / "worker.py"
    script.write_text(WORKER)
    args = [sys.executable, str(script), *store, str(api.path), effects, mode]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


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
