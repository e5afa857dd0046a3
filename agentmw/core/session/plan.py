"""Plans: a generator of steps, run by one sync and one async driver.

A plan holds the decisions (what to call, in which order, what a failure means) once; it yields
each step (a callable without arguments) and the driver runs it: `run_plan` calls it,
`arun_plan` awaits what it returns. A step's exception is thrown back into the plan at its
`yield`, so the plan handles failures with plain `try` / `except`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import suppress
from typing import Any

__all__: list[str] = []

Step = Callable[[], Any]
Plan = Generator[Step, None, None]


def run_plan(plan: Plan) -> None:
    """Run `plan`, calling each step."""
    with suppress(StopIteration):
        step = next(plan)
        while True:
            try:
                step()
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = next(plan)


async def arun_plan(plan: Plan) -> None:
    """Async twin of `run_plan`: awaits each step."""
    with suppress(StopIteration):
        step = next(plan)
        while True:
            try:
                await step()
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = next(plan)
