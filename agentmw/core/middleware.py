"""The `Middleware` base class: twin sync/async paths derived from three small hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from agentmw.core.call import Call

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["Middleware"]

Next = Callable[[Call], Any]
AsyncNext = Callable[[Call], Awaitable[Any]]
StreamNext = Callable[[Call], Iterator[Any]]
AsyncStreamNext = Callable[[Call], AsyncIterator[Any]]

KINDS = frozenset({"turn", "tool"})


class Middleware:
    """One ordered concern around a model turn or a tool call.

    A layer either implements the hook trio (`before`, `after`, `on_error`), from which this class
    derives all four paths (sync, async, sync stream, async stream), or overrides the paths it
    needs (`handle`, `ahandle`, `handle_stream`, `ahandle_stream`). Streams call `after(call, None)`
    once the stream ends, including when the consumer stops early.

    Attributes:
        name: the layer's name in its stack (defaults to the class name).
        kinds: the call kinds the layer applies to ("turn", "tool"); others skip it.
    """

    name: str = "Middleware"
    kinds: frozenset[str] = KINDS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, *, name: str | None = None, kinds: Any = None) -> None:
        """Set a per-instance `name` and `kinds` (both optional).

        Raises:
            ValueError: `name` is blank or `kinds` holds something other than "turn"/"tool".
        """
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"name must be a non-blank string, got {name!r}")
            self.name = name
        if kinds is not None:
            chosen = frozenset([kinds] if isinstance(kinds, str) else kinds)
            if not chosen or not chosen <= KINDS:
                raise ValueError(f"kinds must be a non-empty subset of turn, tool; got {kinds!r}")
            self.kinds = chosen

    # -- hooks -----------------------------------------------------------------------------
    def before(self, call: Call) -> None:
        """Runs before the rest of the chain; raise to refuse the call."""

    def after(self, call: Call, result: Any) -> Any:
        """Runs after a successful call; returns the (possibly replaced) result."""
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        """Observes a failure; the exception is re-raised after it returns."""

    # -- session hooks ---------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        """Called when a session of an agent using this stack starts (in stack order)."""

    def close_session(self, session: Session, error: BaseException | None) -> None:
        """Called when that session ends (in reverse stack order)."""

    async def aopen_session(self, session: Session) -> None:
        """Async twin of `open_session` (defaults to it)."""
        self.open_session(session)

    async def aclose_session(self, session: Session, error: BaseException | None) -> None:
        """Async twin of `close_session` (defaults to it)."""
        self.close_session(session, error)

    # -- the four paths --------------------------------------------------------------------
    def handle(self, call: Call, call_next: Next) -> Any:
        self.before(call)
        try:
            result = call_next(call)
        except BaseException as exc:
            self.on_error(call, exc)
            raise
        return self.after(call, result)

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        self.before(call)
        try:
            result = await call_next(call)
        except BaseException as exc:
            self.on_error(call, exc)
            raise
        return self.after(call, result)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        self.before(call)
        try:
            yield from call_next(call)
        except GeneratorExit:
            self.after(call, None)
            raise
        except BaseException as exc:
            self.on_error(call, exc)
            raise
        self.after(call, None)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        self.before(call)
        agen = call_next(call)
        try:
            async for chunk in agen:
                yield chunk
        except GeneratorExit:
            self.after(call, None)
            raise
        except BaseException as exc:
            self.on_error(call, exc)
            raise
        finally:
            await aclose(agen)
        self.after(call, None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


async def aclose(agen: Any) -> None:
    """Close an async iterator if it can be closed (async generators must be closed explicitly)."""
    closer = getattr(agen, "aclose", None)
    if closer is not None:
        await closer()


Restart = Callable[[BaseException], "tuple[Call, float] | None"]


def restartable_stream(
    call: Call, call_next: StreamNext, restart: Restart, sleep: Callable[[float], Any]
) -> Iterator[Any]:
    """Stream `call_next(call)`, starting it again while it fails before its first chunk.

    `restart(exc)` returns the call for the next try and the delay before it, or None to
    re-raise. Once a chunk has reached the consumer, errors propagate (the design's streaming
    rule: retry and fallback act only before the first chunk). Retry and Fallback share this.
    """
    while True:
        gen = call_next(call)
        started = False
        try:
            for chunk in gen:
                started = True
                yield chunk
            return
        except GeneratorExit:
            raise
        except BaseException as exc:
            decision = None if started else restart(exc)
            if decision is None:
                raise
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
        call, delay = decision
        if delay > 0:
            sleep(delay)


async def arestartable_stream(
    call: Call,
    call_next: AsyncStreamNext,
    restart: Restart,
    asleep: Callable[[float], Awaitable[Any]],
) -> AsyncIterator[Any]:
    """Async twin of `restartable_stream`."""
    while True:
        agen = call_next(call)
        started = False
        try:
            async for chunk in agen:
                started = True
                yield chunk
            return
        except GeneratorExit:
            raise
        except BaseException as exc:
            decision = None if started else restart(exc)
            if decision is None:
                raise
        finally:
            await aclose(agen)
        call, delay = decision
        if delay > 0:
            await asleep(delay)


def overrides(layer: Middleware, method: str) -> bool:
    """True when `layer`'s class overrides `method` of the base class."""
    return getattr(type(layer), method) is not getattr(Middleware, method)
