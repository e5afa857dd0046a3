"""The SQLite sink schema: table definitions, version table, and the foreign-file check."""

from __future__ import annotations

import sqlite3

from agentmw.errors import SinkSchemaError

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 5.0

# `project_id` has no declared type on purpose: SQLite keeps an int an int and a str a str.
_DDL = {
    "events": (
        "CREATE TABLE IF NOT EXISTS agentmw_events ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, name TEXT NOT NULL,"
        " session_id TEXT, role TEXT, phase TEXT, project_id, step INTEGER, model TEXT,"
        " tool TEXT, failure_class TEXT, detail TEXT, data TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS agentmw_events_session ON agentmw_events (session_id, id)",
    ),
    "usage": (
        "CREATE TABLE IF NOT EXISTS agentmw_usage ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, session_id TEXT, role TEXT,"
        " project_id, model TEXT, kind TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL,"
        " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
        " cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,"
        " reasoning_tokens INTEGER NOT NULL, tool_calls INTEGER NOT NULL,"
        " cost_usd TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS agentmw_usage_session ON agentmw_usage (session_id, id)",
    ),
}
_TABLE = {"events": "agentmw_events", "usage": "agentmw_usage"}


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=True)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def ensure_schema(path: str, component: str) -> None:
    """Create the tables of `component` ("events" or "usage") or check they are ours.

    Raises:
        SinkSchemaError: the file is not SQLite, or holds foreign or other-version tables.
    """
    try:
        conn = connect(path)
    except sqlite3.OperationalError as exc:
        raise SinkSchemaError(path, f"cannot open ({type(exc).__qualname__})") from exc
    except sqlite3.DatabaseError as exc:
        raise SinkSchemaError(
            path, f"not an agentmw sink database ({type(exc).__qualname__})"
        ) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal" and path != ":memory:":
            raise SinkSchemaError(path, f"cannot switch to WAL journal mode (got {mode})")
        conn.execute("BEGIN IMMEDIATE")  # serializes two sinks creating the same file
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = None
        if "agentmw_schema" in tables:
            row = conn.execute(
                "SELECT version FROM agentmw_schema WHERE component = ?", (component,)
            ).fetchone()
            version = None if row is None else row[0]
        if version is not None and version != SCHEMA_VERSION:
            raise SinkSchemaError(
                path,
                f"{_TABLE[component]} has schema version {version}, this agentmw reads "
                f"version {SCHEMA_VERSION}",
            )
        if version is None and _TABLE[component] in tables:
            raise SinkSchemaError(
                path, f"table {_TABLE[component]} exists but was not created by agentmw"
            )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS agentmw_schema"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for ddl in _DDL[component]:
            conn.execute(ddl)
        conn.execute(
            "INSERT OR IGNORE INTO agentmw_schema (component, version) VALUES (?, ?)",
            (component, SCHEMA_VERSION),
        )
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise SinkSchemaError(
            path, f"not an agentmw sink database ({type(exc).__qualname__})"
        ) from exc
    finally:
        conn.close()
