"""Checkpoint schema versions 2 and 3: a version-1 or version-2 SQLite file or PostgreSQL table
set upgrades in place and resumes (the SQLite files in tests/fixtures were written by the
version-1 and version-2 code)."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentmw import Agent, Usage
from agentmw.middleware import Checkpoint
from agentmw.stores import CheckpointSchemaError, PostgresSaver, SqliteSaver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "checkpoints_v1.sqlite"
USAGE = Usage(input_tokens=10, output_tokens=5)

ran: list[str] = []


def model(prompt: str) -> str:
    ran.append(f"turn:{prompt}")
    return prompt.upper()


def search(q: str) -> list[str]:
    ran.append(f"tool:{q}")
    return [f"https://x/{q}"]


def broken(q: str) -> str:  # it failed in the version-1 run; it works now
    ran.append(f"broken:{q}")
    return "fixed"


async def amodel(prompt: str) -> str:
    return model(prompt)


async def asearch(q: str) -> list[str]:
    return search(q)


async def abroken(q: str) -> str:
    return broken(q)


amodel.__name__ = "model"  # a turn is named after its function: the same step as "model"


async def resume(saver: Any, mode: str) -> tuple[list[Any], dict[str, Any]]:
    """The version-1 run's calls again, then one new turn."""
    agent = Agent("writer", stack=[Checkpoint(saver)])
    if mode == "sync":
        with agent.session(thread_id="v1-thread") as s:
            out = [
                s.run_turn(model, "p0", model="m", usage=USAGE)[0],
                s.run_tool("search", search, "q0"),
                s.run_tool("broken", broken, "x"),
                s.run_turn(model, "p1", model="m", usage=USAGE)[0],
                s.run_turn(model, "p2", model="m", usage=USAGE)[0],
            ]
            summary = s.summary()
        return out, summary
    async with agent.session(thread_id="v1-thread") as s:
        out = [
            (await s.arun_turn(amodel, "p0", model="m", usage=USAGE))[0],
            await s.arun_tool("search", asearch, "q0"),
            await s.arun_tool("broken", abroken, "x"),
            (await s.arun_turn(amodel, "p1", model="m", usage=USAGE))[0],
            (await s.arun_turn(amodel, "p2", model="m", usage=USAGE))[0],
        ]
        summary = s.summary()
    return out, summary


def check_resumed(out: list[Any], summary: dict[str, Any], steps: list[Any]) -> None:
    assert out == ["P0", ["https://x/q0"], "fixed", "P1", "P2"]
    assert ran == ["broken:x", "turn:p2"]  # the failed step reran, the new one ran; no other
    assert summary["turns"] == 3
    assert summary["usage"]["input_tokens"] == 30  # replayed usage restored
    assert [(r.step, r.name, r.status) for r in steps] == [
        (1, "model", "completed"),
        (2, "search", "completed"),
        (3, "broken", "completed"),
        (4, "model", "completed"),
        (5, "model", "completed"),
    ]
    assert steps[0].idempotency_key is None  # written by version 1
    assert str(steps[2].idempotency_key).startswith("amw-")
    assert steps[4].idempotency_key is not None


def test_the_fixture_is_a_version_1_file() -> None:
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT version FROM agentmw_schema").fetchall() == [(1,)]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(agentmw_checkpoints)")}
    assert "idempotency_key" not in columns


async def test_a_version_1_sqlite_file_upgrades_in_place_and_resumes(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURE, path)
    saver = SqliteSaver(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM agentmw_schema").fetchall() == [(3,)]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(agentmw_checkpoints)")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"idempotency_key", "chunks"} <= columns
    assert "agentmw_approvals" in tables
    before = saver.get_steps("v1-thread")
    assert [(r.step, r.status, r.result) for r in before] == [
        (1, "completed", '"P0"'),
        (2, "completed", '["https://x/q0"]'),
        (3, "failed", None),
        (4, "completed", '"P1"'),
    ]
    ran.clear()
    out, summary = await resume(saver, mode)
    check_resumed(out, summary, saver.get_steps("v1-thread"))
    saver.close()
    SqliteSaver(path).close()  # opening a version-3 file again changes nothing


def test_a_newer_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    shutil.copyfile(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agentmw_schema SET version = 4")
    with pytest.raises(CheckpointSchemaError, match="version 4, this agentmw reads version 3"):
        SqliteSaver(path)


# The version-1 PostgreSQL tables, as `PostgresSaver.setup()` created them before version 2.
V1_DDL = (
    "CREATE TABLE {p}_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE {p}_checkpoints ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, status TEXT NOT NULL, result TEXT, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, finished_before INTEGER NOT NULL,"
    " started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL,"
    " PRIMARY KEY (thread_id, step))",
    "CREATE TABLE {p}_sessions ("
    " thread_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,"
    " iterations INTEGER NOT NULL, tool_calls INTEGER NOT NULL, usage JSONB NOT NULL,"
    " cost_usd NUMERIC NOT NULL, models JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
)


async def test_version_1_postgres_tables_upgrade_in_place_and_resume(
    pg_conninfo: str, mode: str
) -> None:
    import psycopg

    prefix = f"m{uuid.uuid4().hex[:10]}"
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True) as src:
        rows = src.execute("SELECT * FROM agentmw_checkpoints ORDER BY step").fetchall()
    try:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            for ddl in V1_DDL:
                conn.execute(ddl.format(p=prefix))
            conn.execute(f"INSERT INTO {prefix}_schema VALUES ('checkpoints', 1)")
            for row in rows:  # the fixture's version-1 rows
                conn.execute(
                    f"INSERT INTO {prefix}_checkpoints VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    row,
                )
        saver = PostgresSaver(pg_conninfo, table_prefix=prefix)
        if mode == "sync":
            saver.setup()
        else:
            await saver.asetup()
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            version = conn.execute(f"SELECT version FROM {prefix}_schema").fetchall()
        assert version == [(3,)]
        ran.clear()
        out, summary = await resume(saver, mode)
        check_resumed(out, summary, saver.get_steps("v1-thread"))
        assert saver.list_approvals() == []  # the approvals table exists
        saver.setup()  # idempotent on version 3
        await saver.aclose()
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            for t in ("checkpoints", "sessions", "schema", "approvals"):
                conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


# -- version 2 -> 3: the approvals table ------------------------------------------------------
FIXTURE_V2 = Path(__file__).parent.parent / "fixtures" / "checkpoints_v2.sqlite"


def search_v2(q: str) -> list[str]:
    ran.append(f"tool:{q}")
    return [f"https://x/{q}"]


def pay(n: int) -> str:  # in flight when the version-2 run was killed; idempotent: reruns
    ran.append(f"pay:{n}")
    return "paid"


async def apay(n: int) -> str:
    return pay(n)


async def resume_v2(saver: Any, mode: str) -> list[Any]:
    agent = Agent("writer", stack=[Checkpoint(saver)])
    if mode == "sync":
        with agent.session(thread_id="v2-thread") as s:
            return [
                s.run_turn(model, "p0", model="m", usage=USAGE)[0],
                s.run_tool("search", search_v2, "q0"),
                s.run_tool("pay", pay, 5),
            ]
    async with agent.session(thread_id="v2-thread") as s:
        return [
            (await s.arun_turn(amodel, "p0", model="m", usage=USAGE))[0],
            await s.arun_tool("search", asearch, "q0"),
            await s.arun_tool("pay", apay, 5),
        ]


def test_the_v2_fixture_is_a_version_2_file() -> None:
    with sqlite3.connect(f"file:{FIXTURE_V2}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT version FROM agentmw_schema").fetchall() == [(2,)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        statuses = conn.execute("SELECT step, status FROM agentmw_checkpoints").fetchall()
    assert "agentmw_approvals" not in tables
    assert statuses == [(1, "completed"), (2, "completed"), (3, "started")]


async def test_a_version_2_sqlite_file_upgrades_in_place_and_resumes(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "v2.sqlite"
    shutil.copyfile(FIXTURE_V2, path)
    saver = SqliteSaver(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM agentmw_schema").fetchall() == [(3,)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "agentmw_approvals" in tables
    keys = [r.idempotency_key for r in saver.get_steps("v2-thread")]
    ran.clear()
    assert await resume_v2(saver, mode) == ["P0", ["https://x/q0"], "paid"]
    assert ran == ["pay:5"]  # only the in-flight step ran again
    after = saver.get_steps("v2-thread")
    assert [(r.step, r.status) for r in after] == [
        (1, "completed"),
        (2, "completed"),
        (3, "completed"),
    ]
    assert [r.idempotency_key for r in after] == keys  # the same keys as version 2 wrote
    assert saver.list_approvals(pending_only=False) == []
    saver.close()


async def test_version_2_postgres_tables_upgrade_in_place(pg_conninfo: str, mode: str) -> None:
    import psycopg

    prefix = f"m{uuid.uuid4().hex[:10]}"
    with sqlite3.connect(f"file:{FIXTURE_V2}?mode=ro", uri=True) as src:
        rows = src.execute("SELECT * FROM agentmw_checkpoints ORDER BY step").fetchall()
    try:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            for ddl in V1_DDL:
                conn.execute(ddl.format(p=prefix))
            for column in ("idempotency_key", "chunks"):  # what version 2 added
                conn.execute(f"ALTER TABLE {prefix}_checkpoints ADD COLUMN {column} TEXT")
            conn.execute(f"INSERT INTO {prefix}_schema VALUES ('checkpoints', 2)")
            for row in rows:
                conn.execute(
                    f"INSERT INTO {prefix}_checkpoints VALUES ({', '.join(['%s'] * 14)})", row
                )
        saver = PostgresSaver(pg_conninfo, table_prefix=prefix)
        if mode == "sync":
            saver.setup()
        else:
            await saver.asetup()
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            assert conn.execute(f"SELECT version FROM {prefix}_schema").fetchall() == [(3,)]
            assert conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f"{prefix}_approvals",)
            ).fetchone() == (True,)
        ran.clear()
        assert await resume_v2(saver, mode) == ["P0", ["https://x/q0"], "paid"]
        assert ran == ["pay:5"]
        await saver.aclose()
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            for t in ("checkpoints", "sessions", "schema", "approvals"):
                conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")
