"""What an instrumented streamed call returns: the SDK's chunks after the stack's stream path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from agentmw.core.middleware import aclose

__all__ = ["AsyncTurnStream", "TurnStream"]

_NOTHING: Any = object()
# Rewrites one chunk on its way to the consumer (OpenAI Responses: repeated text).
Fix = Callable[[Any], Any]


class _Response:
    """The HTTP response of a turn stream, as the SDKs' stream helpers use it.

    Everything is the SDK's response object except `close` / `aclose`: the OpenAI helpers close
    a stream by closing its response, which here closes the turn (the SDK stream, then usage,
    span and breaker health settle at once instead of when the stream is garbage collected).
    """

    __slots__ = ("_http", "_stream")

    def __init__(self, http: Any, stream: TurnStream | AsyncTurnStream) -> None:
        self._http = http
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)

    def close(self) -> None:
        stream = self._stream
        if isinstance(stream, TurnStream):
            stream.close()
        else:
            self._http.close()

    async def aclose(self) -> None:
        stream = self._stream
        if isinstance(stream, AsyncTurnStream):
            await stream.close()
        else:
            self._http.close()


class TurnStream:
    """What an instrumented streamed call returns on a sync client.

    Iterate it like the SDK's `Stream`: each chunk has passed through the stack's stream path
    (guardrails see it, usage is taken when the stream ends). The first chunk is fetched inside
    the call, so connection, status and rate-limit errors raise there, as with the SDK. Close it
    (or use `with`) when you stop early; the SDK's response is closed with it. `response` is the
    SDK's HTTP response (closing it closes the stream).
    """

    __slots__ = ("_chunks", "_first", "_fix", "_source")

    def __init__(self, chunks: Iterator[Any], source: Any = None, fix: Fix | None = None) -> None:
        self._chunks = chunks
        self._first = _NOTHING
        self._source = source
        self._fix = fix
        with contextlib.suppress(StopIteration):
            self._first = next(chunks)

    @property
    def response(self) -> Any:
        """The SDK's HTTP response of the stream (None when the call was replayed)."""
        http = getattr(self._source, "response", None)
        return None if http is None else _Response(http, self)

    def __iter__(self) -> TurnStream:
        return self

    def __next__(self) -> Any:
        chunk = self._first
        if chunk is not _NOTHING:
            self._first = _NOTHING
        else:
            chunk = next(self._chunks)
        return chunk if self._fix is None else self._fix(chunk)

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
    """What an instrumented streamed call returns (awaited) on an async client.

    The async twin of `TurnStream`: iterate with `async for`, close with `await close()` (the
    SDK's `AsyncStream.close` is a coroutine too) or `async with`.
    """

    __slots__ = ("_chunks", "_first", "_fix", "_source")

    def __init__(
        self, chunks: AsyncIterator[Any], source: Any = None, fix: Fix | None = None
    ) -> None:
        self._chunks = chunks
        self._first: Any = _NOTHING
        self._source = source
        self._fix = fix

    async def _prefetch(self) -> AsyncTurnStream:
        with contextlib.suppress(StopAsyncIteration):
            self._first = await anext(self._chunks)
        return self

    @property
    def response(self) -> Any:
        """The SDK's HTTP response of the stream (None when the call was replayed)."""
        http = getattr(self._source, "response", None)
        return None if http is None else _Response(http, self)

    def __aiter__(self) -> AsyncTurnStream:
        return self

    async def __anext__(self) -> Any:
        chunk = self._first
        if chunk is not _NOTHING:
            self._first = _NOTHING
        else:
            chunk = await anext(self._chunks)
        return chunk if self._fix is None else self._fix(chunk)

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
