"""The PostgreSQL sink schema: tables named from a prefix, a version table, idempotent setup."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_match
from agentmw.errors import SinkSchemaError

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")

_DDL = {
    "events": (
        "CREATE TABLE IF NOT EXISTS {table} ("
        " id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, name TEXT NOT NULL,"
        " session_id TEXT, role TEXT, phase TEXT, project_id JSONB, step INTEGER, model TEXT,"
        " tool TEXT, failure_class TEXT, detail TEXT, data JSONB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {index} ON {table} (session_id, id)",
    ),
    "usage": (
        "CREATE TABLE IF NOT EXISTS {table} ("
        " id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, session_id TEXT, role TEXT,"
        " project_id JSONB, model TEXT, kind TEXT NOT NULL, name TEXT NOT NULL,"
        " step INTEGER NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,"
        " cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,"
        " reasoning_tokens BIGINT NOT NULL, tool_calls BIGINT NOT NULL,"
        " cost_usd NUMERIC NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {index} ON {table} (session_id, id)",
    ),
}


def check_prefix(prefix: object) -> str:
    """`table_prefix`: a lowercase SQL identifier the table names start with."""
    return check_match(
        "table_prefix", prefix, _PREFIX.pattern, f"a lowercase SQL identifier ({_PREFIX.pattern})"
    )


def check_conninfo(conninfo: object, *, pools: bool = False) -> Any:
    """`conninfo`: a libpq connection string or URL that libpq can parse (no connection is
    made), or with `pools=True` also a `psycopg_pool` `ConnectionPool` / `AsyncConnectionPool`.
    """
    psycopg = require_psycopg()
    what = "a libpq connection string or URL"
    if pools:
        try:
            from psycopg_pool import AsyncConnectionPool, ConnectionPool
        except ImportError:  # pragma: no cover - the postgres extra installs psycopg-pool
            pass
        else:
            if isinstance(conninfo, (ConnectionPool, AsyncConnectionPool)):
                return conninfo
        what += ", a psycopg_pool.ConnectionPool or a psycopg_pool.AsyncConnectionPool"
    if not isinstance(conninfo, str):
        raise TypeError(f"conninfo must be {what}, got {type(conninfo).__name__}")
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        # libpq's message may quote the string, which can hold a password: not repeated here.
        raise ValueError(f"conninfo must be {what}; libpq cannot parse the string given") from None
    return conninfo


def require_psycopg(who: str = "the PostgreSQL sinks need") -> Any:
    """The psycopg module (an optional dependency), or an ImportError naming the extra."""
    try:
        import psycopg
        import psycopg.conninfo  # check_conninfo parses with it
    except ImportError as exc:  # an optional dependency
        raise ImportError(f"{who} psycopg 3: pip install 'agentmw[postgres]'") from exc
    return psycopg


def ensure_schema(conn: psycopg.Connection[Any], prefix: str, component: str) -> None:
    """Create `{prefix}_{component}` and its version row, or check they are ours. Idempotent.

    Raises:
        SinkSchemaError: the table exists without our version row, or with another version.
    """
    from psycopg import sql

    table = f"{prefix}_{component}"
    ids = {
        "table": sql.Identifier(table),
        "index": sql.Identifier(f"{table}_session"),
        "schema": sql.Identifier(f"{prefix}_schema"),
    }
    with conn.transaction():
        # Two processes starting at once would race on CREATE TABLE IF NOT EXISTS.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentmw:{prefix}",))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {schema}"
                " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            ).format(**ids)
        )
        row = conn.execute(
            sql.SQL("SELECT version FROM {schema} WHERE component = %s").format(**ids),
            (component,),
        ).fetchone()
        if row is not None and row[0] != SCHEMA_VERSION:
            raise SinkSchemaError(
                table, f"schema version {row[0]}, this agentmw reads version {SCHEMA_VERSION}"
            )
        if row is None:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if exists is not None and exists[0]:
                raise SinkSchemaError(table, "table exists but was not created by agentmw")
        for ddl in _DDL[component]:
            conn.execute(sql.SQL(ddl).format(**ids))
        conn.execute(
            sql.SQL(
                "INSERT INTO {schema} (component, version) VALUES (%s, %s)"
                " ON CONFLICT (component) DO NOTHING"
            ).format(**ids),
            (component, SCHEMA_VERSION),
        )
