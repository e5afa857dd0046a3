"""Instrumenting one SDK `create` method: plain and streamed calls through the stack as turns."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from agentmw.core.context import CURRENT_SESSION as _current
from agentmw.core.decorators import build_wrapper as _build
from agentmw.core.middleware import aclose
from agentmw.core.stack import Stack, get_default_stack

__all__ = ["AsyncTurnStream", "TurnStream", "instrument_method"]

# Set on every instrumented `create`: the SDK's own method, so instrumenting again re-wraps it
# (the last `instrument` call wins) instead of stacking two wrappers.
ORIGINAL = "__agentmw_original__"
_NOTHING: Any = object()


class TurnStream:
    """What an instrumented `create(stream=True)` returns on a sync client.

    Iterate it like the SDK's `Stream`: each chunk has passed through the stack's stream path
    (guardrails see it, usage is taken when the stream ends). The first chunk is fetched inside
    `create`, so connection, status and rate-limit errors raise there, as with the SDK. Close it
    (or use `with`) when you stop early; the SDK's response is closed with it.
    """

    __slots__ = ("_chunks", "_first")

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._first = _NOTHING
        with contextlib.suppress(StopIteration):
            self._first = next(chunks)

    def __iter__(self) -> TurnStream:
        return self

    def __next__(self) -> Any:
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            return first
        return next(self._chunks)

    def close(self) -> None:
        """Stop the stream: the SDK response closes and the turn settles its usage."""
        self._first = _NOTHING
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> TurnStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncTurnStream:
    """What an instrumented `await create(stream=True)` returns on an async client.

    The async twin of `TurnStream`: iterate with `async for`, close with `await close()` (the
    SDK's `AsyncStream.close` is a coroutine too) or `async with`.
    """

    __slots__ = ("_chunks", "_first")

    def __init__(self, chunks: AsyncIterator[Any]) -> None:
        self._chunks = chunks
        self._first: Any = _NOTHING

    async def _prefetch(self) -> AsyncTurnStream:
        with contextlib.suppress(StopAsyncIteration):
            self._first = await anext(self._chunks)
        return self

    def __aiter__(self) -> AsyncTurnStream:
        return self

    async def __anext__(self) -> Any:
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            return first
        return await anext(self._chunks)

    async def close(self) -> None:
        """Stop the stream: the SDK response closes and the turn settles its usage."""
        self._first = _NOTHING
        await aclose(self._chunks)

    aclose = close

    async def __aenter__(self) -> AsyncTurnStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _RetryWarning:
    """Warns once per client when the SDK retries under a stack that has a `Retry` layer."""

    __slots__ = ("_client", "_done", "_lock")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._done = False
        self._lock = threading.Lock()

    def check(self, fixed: Stack | None) -> None:
        if self._done:
            return
        retries = getattr(self._client, "max_retries", 0)
        if not isinstance(retries, int) or retries <= 0:
            return
        from agentmw.middleware.retry.layer import Retry

        session = _current.get()
        stack = fixed or (session.stack if session is not None else get_default_stack())
        if not any(isinstance(layer, Retry) for layer in stack):
            return
        with self._lock:
            if self._done:
                return
            self._done = True
        warnings.warn(
            f"{type(self._client).__name__} has max_retries={retries} under a stack with Retry: "
            "every Retry attempt also retries inside the SDK. Create the client with "
            "max_retries=0 and let Retry (which honours Retry-After) decide.",
            RuntimeWarning,
            stacklevel=4,
        )


def instrument_method(
    owner: Any,
    *,
    name: str,
    provider: str,
    stack: Stack | None,
    model_from_kwargs: bool,
    warner: _RetryWarning,
) -> None:
    """Replace `owner.create` (an SDK resource) with a wrapper that runs each call as a turn."""
    create: Callable[..., Any] = getattr(owner.create, ORIGINAL, owner.create)
    options: dict[str, Any] = {"provider": provider, "model_from_kwargs": model_from_kwargs}
    wrapper: Callable[..., Any]
    if type(owner).__name__.startswith("Async"):
        wrapper = _async_wrapper(create, name, stack, options, warner)
    else:
        wrapper = _sync_wrapper(create, name, stack, options, warner)
    setattr(wrapper, ORIGINAL, create)
    wrapper.__doc__ = create.__doc__
    wrapper.__name__ = "create"
    wrapper.__qualname__ = f"{type(owner).__name__}.create"
    # An instance attribute shadows the class's method; the client caches its resource objects.
    owner.create = wrapper


def _sync_wrapper(
    create: Callable[..., Any],
    name: str,
    stack: Stack | None,
    options: dict[str, Any],
    warner: _RetryWarning,
) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return create(*args, **kwargs)

    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        sdk_stream = create(*args, **kwargs)
        try:
            yield from sdk_stream
        finally:
            sdk_stream.close()

    turn = _build(call, "turn", name, None, stack, None, **options)
    stream_turn = _build(stream, "turn", name, None, stack, None, **options)

    def instrumented_create(*args: Any, **kwargs: Any) -> Any:
        warner.check(stack)
        if kwargs.get("stream") is True:
            return TurnStream(stream_turn(*args, **kwargs))
        return turn(*args, **kwargs)

    return instrumented_create


def _async_wrapper(
    create: Callable[..., Any],
    name: str,
    stack: Stack | None,
    options: dict[str, Any],
    warner: _RetryWarning,
) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return await create(*args, **kwargs)

    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        sdk_stream = await create(*args, **kwargs)
        try:
            async for chunk in sdk_stream:
                yield chunk
        finally:
            await sdk_stream.close()

    turn = _build(call, "turn", name, None, stack, None, **options)
    stream_turn = _build(stream, "turn", name, None, stack, None, **options)

    async def instrumented_create(*args: Any, **kwargs: Any) -> Any:
        warner.check(stack)
        if kwargs.get("stream") is True:
            return await AsyncTurnStream(stream_turn(*args, **kwargs))._prefetch()
        return await turn(*args, **kwargs)

    return instrumented_create


def instrument_client(
    client: Any,
    resources: dict[str, str],
    *,
    provider: str,
    stack: Stack | None,
    model_from_kwargs: bool,
) -> list[str]:
    """Instrument each `resources` path ("chat.completions" -> turn name) the client has.

    Raises:
        TypeError: `stack` is neither a `Stack` nor None.
    """
    if stack is not None and not isinstance(stack, Stack):
        raise TypeError(f"stack must be a Stack or None, got {type(stack).__name__}")
    warner = _RetryWarning(client)
    done = []
    for path, name in resources.items():
        owner = client
        for part in path.split("."):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is None or not callable(getattr(owner, "create", None)):
            continue
        instrument_method(
            owner,
            name=name,
            provider=provider,
            stack=stack,
            model_from_kwargs=model_from_kwargs,
            warner=warner,
        )
        done.append(path)
    return done
