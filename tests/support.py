"""Helpers shared by the tests: hook-only and pass-through layers, and a 4-path runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

from agentmw import AgentState, Call, Middleware, Session, Stack, agent_turn
from agentmw.core.middleware import AsyncNext, Next

PATHS = ["sync", "async", "stream", "astream"]


class Hooks(Middleware):
    """A hook-only layer: records before/after/on_error into `log`."""

    def __init__(self, log: list[tuple[str, str]], *, name: str | None = None, **kw: Any):
        super().__init__(name=name, **kw)
        self.log = log

    def before(self, call: Call) -> None:
        self.log.append((self.name, "before"))

    def after(self, call: Call, result: Any) -> Any:
        self.log.append((self.name, "after"))
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        self.log.append((self.name, f"error:{type(exc).__name__}"))


class PassThrough(Middleware):
    """Overrides handle/ahandle and only calls the next layer."""

    def handle(self, call: Call, call_next: Next) -> Any:
        return call_next(call)

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return await call_next(call)


def make_fn(path: str, result: Any = "ok", *, fail: BaseException | None = None) -> Any:
    """A plain function of the given path returning `result` (or the chunks of it)."""
    if path == "sync":

        def sync_fn() -> Any:
            if fail is not None:
                raise fail
            return result

        return sync_fn
    if path == "async":

        async def async_fn() -> Any:
            await asyncio.sleep(0)
            if fail is not None:
                raise fail
            return result

        return async_fn
    if path == "stream":

        def stream_fn() -> Iterator[Any]:
            yield from ("a", "b", "c")
            if fail is not None:
                raise fail

        return stream_fn

    async def astream_fn() -> AsyncIterator[Any]:
        for chunk in ("a", "b", "c"):
            await asyncio.sleep(0)
            yield chunk
        if fail is not None:
            raise fail

    return astream_fn


async def consume(path: str, fn: Callable[..., Any], *, take: int | None = None) -> Any:
    """Call `fn` on its path; for streams collect the chunks (at most `take`, then close)."""
    if path == "sync":
        return fn()
    if path == "async":
        return await fn()
    chunks: list[Any] = []
    if path == "stream":
        gen = fn()
        try:
            for chunk in gen:
                chunks.append(chunk)
                if take is not None and len(chunks) >= take:
                    break
        finally:
            gen.close()
        return chunks
    async with aclosing(fn()) as agen:
        async for chunk in agen:
            chunks.append(chunk)
            if take is not None and len(chunks) >= take:
                break
    return chunks


async def run_path(path: str, stack: Stack, **kw: Any) -> Any:
    """Decorate a fresh function of `path` with `stack` and consume it."""
    return await consume(path, agent_turn(stack=stack)(make_fn(path, **kw)))


async def turn(mode: str, session: Session, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`session.run_turn` or `await session.arun_turn`, by mode."""
    if mode == "sync":
        return session.run_turn(fn, *args, **kwargs)
    return await session.arun_turn(fn, *args, **kwargs)


def state_of(session: Session) -> AgentState:
    """`session.state`, read afresh.

    mypy keeps `session.state` narrowed by an earlier `assert session.state is X` across the calls
    and awaits that move the session on, so a later check of another state looks unreachable.
    """
    return session.state
