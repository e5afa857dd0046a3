"""The `agentmw_approvals` table of a `SqliteSaver` file (schema version 3): SQL and readers
the saver and the CLI share."""

from __future__ import annotations

import sqlite3

from agentmw.stores._approvals import APPROVAL_COLUMNS, ApprovalRecord, approval_from_row

__all__: list[str] = []  # internal to SqliteSaver and the CLI

APPROVALS_DDL = (
    "CREATE TABLE IF NOT EXISTS agentmw_approvals ("
    " thread_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
    " rule TEXT NOT NULL, prompt TEXT NOT NULL, arguments TEXT NOT NULL, status TEXT NOT NULL,"
    " edited_arguments TEXT, note TEXT, requested_at TEXT NOT NULL, decided_at TEXT,"
    " PRIMARY KEY (thread_id, step))"
)
PUT_APPROVAL = (
    f"INSERT OR REPLACE INTO agentmw_approvals (thread_id, step, {APPROVAL_COLUMNS})"
    f" VALUES ({', '.join(['?'] * 12)})"
)


def _has_table(conn: sqlite3.Connection) -> bool:
    # The read-only CLI may meet a version-2 file that no saver has upgraded yet.
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'agentmw_approvals'"
    ).fetchone()
    return row is not None


def read_approvals(conn: sqlite3.Connection, thread_id: str) -> list[ApprovalRecord]:
    """The thread's approvals in step order."""
    if not _has_table(conn):
        return []
    rows = conn.execute(
        f"SELECT step, {APPROVAL_COLUMNS} FROM agentmw_approvals WHERE thread_id = ? ORDER BY step",
        (thread_id,),
    ).fetchall()
    return [approval_from_row(thread_id, r[0], r[1:]) for r in rows]


def read_all_approvals(conn: sqlite3.Connection, pending_only: bool) -> list[ApprovalRecord]:
    """Every thread's approvals (the pending ones only, or all), by thread and step."""
    if not _has_table(conn):
        return []
    where = " WHERE status = 'pending'" if pending_only else ""
    rows = conn.execute(
        f"SELECT thread_id, step, {APPROVAL_COLUMNS} FROM agentmw_approvals{where}"
        " ORDER BY thread_id, step"
    ).fetchall()
    return [approval_from_row(r[0], r[1], r[2:]) for r in rows]


def read_approval(conn: sqlite3.Connection, thread_id: str, step: int) -> ApprovalRecord | None:
    """One step's approval, if the thread has it."""
    row = conn.execute(
        f"SELECT {APPROVAL_COLUMNS} FROM agentmw_approvals WHERE thread_id = ? AND step = ?",
        (thread_id, step),
    ).fetchone()
    return None if row is None else approval_from_row(thread_id, step, row)
