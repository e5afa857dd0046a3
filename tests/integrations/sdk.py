"""Shared helpers for the SDK integration tests: a spy layer and sync/async call helpers."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from agentmw import Middleware
from agentmw.core.call import Call


class Spy(Middleware):
    """Records every call object that passes (its usage/meta are read after the call)."""

    def __init__(self) -> None:
        super().__init__(name="spy")
        self.calls: list[Call] = []
        self.attempts: list[int] = []

    def before(self, call: Call) -> None:
        self.attempts.append(call.attempt)
        if call not in self.calls:
            self.calls.append(call)


async def done(value: Any) -> Any:
    """`value`, awaited when the async client returned a coroutine."""
    return await value if inspect.isawaitable(value) else value


async def collect(stream: Any) -> list[Any]:
    """Every chunk of a sync or async stream."""
    if hasattr(stream, "__aiter__"):
        return [chunk async for chunk in stream]
    return list(stream)


async def failure_of(fn: Any) -> BaseException:
    """The exception `fn()` raises (sync) or its coroutine raises (async)."""
    try:
        await done(fn())
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


@contextlib.asynccontextmanager
async def opened(manager: Any) -> AsyncIterator[Any]:
    """`with manager as value` or `async with manager as value`, whichever it supports."""
    if hasattr(manager, "__aenter__"):
        async with manager as value:
            yield value
    else:
        with manager as value:
            yield value


async def parsed(wrapper: Any) -> Any:
    """A raw or streaming-response wrapper's `parse()`, awaited on the async clients' wrappers."""
    return await done(wrapper.parse())


def spans() -> tuple[Any, Any]:
    """A tracer provider with an in-memory exporter: (provider, exporter)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter
