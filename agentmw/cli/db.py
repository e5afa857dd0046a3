"""What the `agentmw` CLI needs besides argparse: read-only database access and plain tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from agentmw.stores._sqlite_sinks import prepare_reader

# Internals of `agentmw.cli`; nothing here is public API.
__all__: list[str] = []

# Which agentmw_schema component each table belongs to (the saver and sinks write these rows).
COMPONENT_TABLES = {
    "events": ("agentmw_events",),
    "usage": ("agentmw_usage",),
    "checkpoints": ("agentmw_checkpoints", "agentmw_sessions"),
}


class CliError(Exception):
    """A problem the CLI reports on stderr with exit code 2 (no traceback)."""


@contextmanager
def open_db(path: str, component: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an agentmw SQLite file that holds `component`'s tables.

    Raises:
        CliError: missing file, not SQLite, no agentmw tables, or not the tables asked for.
    """
    file = Path(path)
    if not file.is_file():
        raise CliError(f"{path}: no such file")
    # mode=ro: the CLI never creates or changes a database, even by mistake.
    uri = f"file:{quote(str(file.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise CliError(f"{path}: cannot open ({type(exc).__name__})") from exc
    try:
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise CliError(f"{path}: not a SQLite database") from exc
        if "agentmw_schema" not in tables:
            raise CliError(f"{path}: not an agentmw database (no agentmw_schema table)")
        components = {r[0] for r in conn.execute("SELECT component FROM agentmw_schema")}
        needed = COMPONENT_TABLES[component]
        if component not in components or not set(needed) <= tables:
            raise CliError(
                f"{path}: has no {', '.join(needed)} table"
                f" (this file holds: {', '.join(sorted(components)) or 'nothing'})"
            )
        prepare_reader(conn)
        yield conn
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{path}: cannot read ({type(exc).__name__})") from exc
    finally:
        conn.close()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Rows under a header and a dashed rule, columns two spaces apart.

    Args:
        headers: the column titles.
        rows: the cells, already formatted as text.
        align: one letter per column, "l" (the default) or "r" (numbers).
    """
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    aligns = align.ljust(len(headers), "l")

    def line(cells: Sequence[str]) -> str:
        parts = (
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, aligns, strict=True)
        )
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def cell(value: object) -> str:
    """A table cell: "-" for a missing value."""
    return "-" if value is None or value == "" else str(value)
