"""Async twins derived from sync methods, so a store's two faces cannot drift.

`aput_step = offloaded(put_step)` in a class body gives `aput_step` the signature and the
behaviour of `put_step`; the twin looks the method up on the instance, so a subclass that
overrides `put_step` changes both paths at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__: list[str] = []  # internal: the stores build their twins with these

S = TypeVar("S")
P = ParamSpec("P")
T = TypeVar("T")

AsyncMethod = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]


def _named(twin: Any, method: Callable[..., Any], how: str) -> None:
    owner, _, name = method.__qualname__.rpartition(".")
    twin.__name__ = f"a{name}"
    twin.__qualname__ = f"{owner}.a{name}" if owner else f"a{name}"
    twin.__doc__ = f"Async twin of `{name}` ({how})."
    twin.__wrapped__ = method  # `inspect.signature` shows the sync method's parameters


def inline(method: Callable[Concatenate[S, P], T]) -> AsyncMethod[S, P, T]:
    """The async twin of a method that never blocks: it runs on the event loop, inline."""
    name = method.__name__

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = getattr(self, name)(*args, **kwargs)
        return result

    _named(twin, method, "runs inline: nothing here blocks")
    return twin


def offloaded(method: Callable[Concatenate[S, P], T]) -> AsyncMethod[S, P, T]:
    """The async twin of a method that blocks (disk, a lock, a thread join): it runs in a worker
    thread (`asyncio.to_thread`), so the event loop never waits on it."""
    name = method.__name__

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await asyncio.to_thread(getattr(self, name), *args, **kwargs)
        return result

    _named(twin, method, "runs in a worker thread, never blocking the event loop")
    return twin
