"""PostgreSQL plans: an operation written once as the statements it runs, driven sync or async.

A plan is a generator: it yields `Statement`s, is sent each one's rows (when it asked for them),
and returns the operation's answer. `drive` runs it on a psycopg `Connection`, `adrive` on an
`AsyncConnection`; they differ only in `await`, so the two paths of a saver cannot drift.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

__all__: list[str] = []  # internal to the PostgreSQL saver

T = TypeVar("T")


class Statement(NamedTuple):
    """One SQL statement of a plan; with `fetch` its rows are sent back into the plan."""

    sql: str
    params: Sequence[Any] | None = None
    fetch: bool = False


# A plan yields the statements of one transaction, is sent their rows, and returns the answer.
Plan = Generator[Statement, Any, T]


def drive(conn: Any, plan: Plan[T]) -> T:
    """Run `plan` on `conn` (inside the caller's transaction) and return its answer."""
    try:
        statement = next(plan)
        while True:
            cursor = conn.execute(statement.sql, statement.params)
            statement = plan.send(cursor.fetchall() if statement.fetch else None)
    except StopIteration as done:
        return cast(T, done.value)


async def adrive(conn: Any, plan: Plan[T]) -> T:
    """Async twin of `drive`."""
    try:
        statement = next(plan)
        while True:
            cursor = await conn.execute(statement.sql, statement.params)
            statement = plan.send(await cursor.fetchall() if statement.fetch else None)
    except StopIteration as done:
        return cast(T, done.value)
