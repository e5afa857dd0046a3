"""The contract every CheckpointSaver passes (memory, SQLite, PostgreSQL), sync and async."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentmw import Usage
from agentmw.stores import (
    CheckpointCorruptError,
    CheckpointSaver,
    CheckpointSchemaError,
    InMemorySaver,
    PostgresSaver,
    SessionSnapshot,
    SqliteSaver,
    StepRecord,
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemorySaver()
    elif request.param == "sqlite":
        s = SqliteSaver(tmp_path / "ck.db")
        yield s
        s.close()
    else:
        conninfo = request.getfixturevalue("pg_conninfo")
        prefix = f"t{uuid.uuid4().hex[:10]}"
        pg = PostgresSaver(conninfo, table_prefix=prefix)
        pg.setup()
        pg.setup()  # idempotent
        yield pg
        import psycopg

        with psycopg.connect(conninfo, autocommit=True) as conn:
            for t in ("checkpoints", "sessions", "schema", "approvals"):
                conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")
        asyncio.run(pg.aclose())


def rec(thread: str, step: int, *, name: str = "search", result: str | None = '"ok"') -> StepRecord:
    return StepRecord(
        thread, step, "tool", name, f"fp{step}", "completed", result,
        Usage(input_tokens=step, output_tokens=1), Decimal("0.001") * step, step - 1,
    )  # fmt: skip


async def run(saver: Any, mode: str, method: str, *args: Any) -> Any:
    if mode == "sync":
        return getattr(saver, method)(*args)
    return await getattr(saver, "a" + method)(*args)


def test_savers_satisfy_the_protocol(saver: Any) -> None:
    assert isinstance(saver, CheckpointSaver)


async def test_steps_come_back_in_order_and_replace_on_rewrite(saver: Any, mode: str) -> None:
    t = uuid.uuid4().hex
    for n in (3, 1, 2):
        await run(saver, mode, "put_step", rec(t, n))
    await run(saver, mode, "put_step", rec(t, 2, result='"again"'))  # idempotent upsert
    got = await run(saver, mode, "get_steps", t)
    assert [r.step for r in got] == [1, 2, 3]
    assert got[1].result == '"again"'
    assert got[2].usage == Usage(input_tokens=3, output_tokens=1)
    assert got[2].cost_usd == Decimal("0.003")
    assert got[2].finished_before == 2
    assert got[0].kind == "tool"
    assert got[0].status == "completed"


async def test_threads_are_isolated_and_delete(saver: Any, mode: str) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    await run(saver, mode, "put_step", rec(a, 1))
    await run(saver, mode, "put_step", rec(b, 1, name="other"))
    await run(saver, mode, "put_step", rec(b, 2))
    assert [r.name for r in await run(saver, mode, "get_steps", a)] == ["search"]
    threads = await run(saver, mode, "list_threads")
    assert {a, b} <= set(threads)
    await run(saver, mode, "delete_steps", b, [2])
    assert [r.step for r in await run(saver, mode, "get_steps", b)] == [1]
    await run(saver, mode, "delete_thread", a)
    assert await run(saver, mode, "get_steps", a) == []
    assert a not in await run(saver, mode, "list_threads")
    assert await run(saver, mode, "get_steps", uuid.uuid4().hex) == []


async def test_snapshot_round_trip(saver: Any, mode: str) -> None:
    t = uuid.uuid4().hex
    assert await run(saver, mode, "get_snapshot", t) is None
    snap = SessionSnapshot(
        t, "s1", "completed", 3, 2, Usage(input_tokens=7), Decimal("0.25"),
        {"m": {"calls": 3, "cost_usd": "0.25"}},
    )  # fmt: skip
    await run(saver, mode, "put_snapshot", snap)
    await run(saver, mode, "put_snapshot", snap)
    got = await run(saver, mode, "get_snapshot", t)
    assert (got.state, got.iterations, got.tool_calls) == ("completed", 3, 2)
    assert got.usage == Usage(input_tokens=7)
    assert got.cost_usd == Decimal("0.25")
    assert got.models == {"m": {"calls": 3, "cost_usd": "0.25"}}
    await run(saver, mode, "delete_thread", t)
    assert await run(saver, mode, "get_snapshot", t) is None


def test_concurrent_writers_on_different_threads(saver: Any) -> None:
    threads = [uuid.uuid4().hex for _ in range(4)]

    def write(t: str) -> None:
        for n in range(1, 11):
            saver.put_step(rec(t, n))

    workers = [threading.Thread(target=write, args=(t,)) for t in threads]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for t in threads:
        assert [r.step for r in saver.get_steps(t)] == list(range(1, 11))


def test_sqlite_schema_version_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ck.db"
    SqliteSaver(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agentmw_schema SET version = 99 WHERE component = 'checkpoints'")
    with pytest.raises(CheckpointSchemaError, match="version 99"):
        SqliteSaver(path)


def test_sqlite_validates_synchronous(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be one of NORMAL, FULL"):
        SqliteSaver(tmp_path / "x.db", synchronous="OFF")
    SqliteSaver(tmp_path / "x.db", synchronous="FULL").close()


def test_corrupt_sqlite_row_names_thread_and_step(tmp_path: Path) -> None:
    path = tmp_path / "ck.db"
    s = SqliteSaver(path)
    s.put_step(rec("t1", 4))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agentmw_checkpoints SET usage = 'not json' WHERE step = 4")
    with pytest.raises(CheckpointCorruptError, match=r"thread 't1', step 4") as info:
        s.get_steps("t1")
    assert (info.value.thread_id, info.value.step) == ("t1", 4)
    s.close()


def test_postgres_schema_version_mismatch(pg_conninfo: str) -> None:
    import psycopg

    prefix = f"t{uuid.uuid4().hex[:10]}"
    s = PostgresSaver(pg_conninfo, table_prefix=prefix)
    s.setup()
    try:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(f"UPDATE {prefix}_schema SET version = 99")
        with pytest.raises(CheckpointSchemaError, match="version 99"):
            s.setup()
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            for t in ("checkpoints", "sessions", "schema", "approvals"):
                conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")
        s.close()


async def test_postgres_async_setup_and_pool(pg_conninfo: str) -> None:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    prefix = f"t{uuid.uuid4().hex[:10]}"
    async with AsyncConnectionPool(pg_conninfo, min_size=1, max_size=2, open=False) as pool:
        s = PostgresSaver(pool, table_prefix=prefix)
        await s.asetup()
        try:
            await s.aput_step(rec("p", 1))
            assert [r.step for r in await s.aget_steps("p")] == [1]
        finally:
            with psycopg.connect(pg_conninfo, autocommit=True) as conn:
                for t in ("checkpoints", "sessions", "schema", "approvals"):
                    conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


def started(thread: str, step: int, *, chunks: str | None = None) -> StepRecord:
    return StepRecord(
        thread, step, "tool", "pay", f"fp{step}", "started", None, Usage(), Decimal(0), step - 1,
        idempotency_key=f"key-{step}", chunks=chunks,
    )  # fmt: skip


async def resolve(saver: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return saver.resolve_step(*args, **kwargs)
    return await saver.aresolve_step(*args, **kwargs)


async def test_started_records_keep_their_key_and_resolve(saver: Any, mode: str) -> None:
    await run(saver, mode, "put_step", started("r", 1))
    await run(saver, mode, "put_step", started("r", 2))
    await run(saver, mode, "put_step", started("r", 3, chunks="[]"))
    held = await run(saver, mode, "get_steps", "r")
    assert [(r.status, r.idempotency_key, r.result) for r in held] == [
        ("started", "key-1", None),
        ("started", "key-2", None),
        ("started", "key-3", None),
    ]
    done = await resolve(saver, mode, "r", 1, result={"paid": True})
    assert (done.status, done.result) == ("completed", '{"paid":true}')
    again = await resolve(saver, mode, "r", 2, rerun=True)
    assert again.status == "rerun"
    streamed = await resolve(saver, mode, "r", 3, result=["a", "b"])
    assert (streamed.status, streamed.chunks, streamed.result) == ("completed", '["a","b"]', None)
    held = await run(saver, mode, "get_steps", "r")
    assert [(r.step, r.status, r.result, r.chunks, r.idempotency_key) for r in held] == [
        (1, "completed", '{"paid":true}', None, "key-1"),
        (2, "rerun", None, None, "key-2"),
        (3, "completed", None, '["a","b"]', "key-3"),
    ]


async def test_resolve_step_refuses_what_it_cannot_resolve(saver: Any, mode: str) -> None:
    await run(saver, mode, "put_step", rec("r", 1))
    await run(saver, mode, "put_step", started("r", 2))
    await run(saver, mode, "put_step", started("r", 3, chunks="[]"))
    with pytest.raises(ValueError, match=r"exactly one of result=\.\.\. or rerun=True"):
        await resolve(saver, mode, "r", 2)
    with pytest.raises(ValueError, match=r"exactly one of result=\.\.\. or rerun=True"):
        await resolve(saver, mode, "r", 2, result=1, rerun=True)
    with pytest.raises(TypeError, match="rerun must be a bool, got str"):
        await resolve(saver, mode, "r", 2, rerun="yes")
    with pytest.raises(ValueError, match="thread 'r' has no step 9"):
        await resolve(saver, mode, "r", 9, rerun=True)
    with pytest.raises(ValueError, match="step 1 of thread 'r' is completed, not in flight"):
        await resolve(saver, mode, "r", 1, rerun=True)
    with pytest.raises(TypeError, match="result must be JSON-serializable, got object"):
        await resolve(saver, mode, "r", 2, result=object())
    with pytest.raises(TypeError, match="is a streamed step: result must be the list"):
        await resolve(saver, mode, "r", 3, result="text")
    held = await run(saver, mode, "get_steps", "r")
    assert [r.status for r in held] == ["completed", "started", "started"]  # nothing changed
