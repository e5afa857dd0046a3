"""How a session follows its work into threads and tasks: `bind`, `executor`, `agather`.

A context variable carries the current session into asyncio tasks and `asyncio.to_thread`,
not into a plain `threading.Thread`, a `ThreadPoolExecutor` or `loop.run_in_executor`. These
helpers carry it there, so every call made by the work counts in the session.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeVar

from agentmw._validate import check_callable, check_optional_int, check_optional_number
from agentmw.core.context import CURRENT_SESSION

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from agentmw.core.session.session import Session

__all__: list[str] = []  # `Session.bind`, `Session.executor` and `Session.agather` are the face

T = TypeVar("T")


def bind(session: Session, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` made to run in `session` wherever it is called (see `Session.bind`)."""
    check_callable("fn", fn, "a function or a coroutine function")
    inner = getattr(fn, "__func__", fn)
    if inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
        raise TypeError(
            "fn must be a function or a coroutine function, not a generator function: bind "
            "a function that iterates the stream instead"
        )
    if inspect.iscoroutinefunction(inner):

        @functools.wraps(fn)
        async def abound(*args: Any, **kwargs: Any) -> Any:
            token = CURRENT_SESSION.set(session)
            try:
                return await fn(*args, **kwargs)
            finally:
                CURRENT_SESSION.reset(token)

        return abound

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        token = CURRENT_SESSION.set(session)
        try:
            return fn(*args, **kwargs)
        finally:
            CURRENT_SESSION.reset(token)

    return bound


class SessionWork:
    """The executors a session handed out, shut down when the session ends."""

    __slots__ = ("_executors",)

    # One lock for every session's list: handing out an executor is rare, and a lock per
    # session was a tenth of a short session's memory.
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._executors: list[ThreadPoolExecutor] = []

    def executor(self, session: Session, max_workers: int | None) -> ThreadPoolExecutor:
        """A pool whose worker threads run in `session` (see `Session.executor`)."""
        from concurrent.futures import ThreadPoolExecutor  # `import agentmw` stays light

        workers = check_optional_int("max_workers", max_workers, minimum=1)
        # Each worker thread enters the session once, when it starts: a task costs nothing more.
        pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix=f"agentmw-session-{session.id[:8]}",
            initializer=CURRENT_SESSION.set,
            initargs=(session,),
        )
        with self._lock:
            self._executors.append(pool)
        return pool

    def _take(self) -> list[ThreadPoolExecutor]:
        with self._lock:
            pools, self._executors = self._executors, []
        return pools

    def shutdown(self, error: BaseException | None) -> None:
        """Wait for the pools' tasks; after a failure, cancel those that have not started."""
        for pool in self._take():
            pool.shutdown(wait=True, cancel_futures=error is not None)

    async def ashutdown(self, error: BaseException | None) -> None:
        """Async twin of `shutdown`: the waiting happens in a worker thread, not on the loop."""
        pools = self._take()
        if pools:
            import asyncio

            cancel = error is not None
            await asyncio.to_thread(_shutdown_all, pools, cancel)


def _shutdown_all(pools: list[ThreadPoolExecutor], cancel: bool) -> None:
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=cancel)


async def agather(
    session: Session,
    awaitables: tuple[Awaitable[Any], ...],
    timeout: Any,  # noqa: ASYNC109
) -> list[Any]:
    """Run `awaitables` concurrently in `session` under one TaskGroup (see `Session.agather`)."""
    import asyncio  # `import agentmw` does not load asyncio

    try:
        deadline = check_optional_number("timeout", timeout, minimum=0)
        for index, aw in enumerate(awaitables):
            if not inspect.isawaitable(aw):
                raise TypeError(f"awaitables[{index}] must be awaitable, got {type(aw).__name__}")
    except (TypeError, ValueError):
        _close_all(awaitables)  # refused before any ran: no "never awaited" warnings
        raise
    context = copy_context()
    context.run(CURRENT_SESSION.set, session)
    tasks: list[asyncio.Task[Any]] = []
    async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
        for aw in awaitables:
            # A context of its own per task: what one task sets never leaks into another.
            tasks.append(group.create_task(_as_coroutine(aw), context=context.copy()))
    return [task.result() for task in tasks]


def _close_all(awaitables: tuple[Any, ...]) -> None:
    for aw in awaitables:
        if inspect.iscoroutine(aw):
            aw.close()


def _as_coroutine(aw: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if inspect.iscoroutine(aw):
        return aw

    async def wait() -> T:
        return await aw

    return wait()
