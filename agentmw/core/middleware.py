"""The `Middleware` base class (four paths derived from small hooks) and the stream helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_name
from agentmw.core.call import Call

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["Middleware"]

Next = Callable[[Call], Any]
AsyncNext = Callable[[Call], Awaitable[Any]]
StreamNext = Callable[[Call], Iterator[Any]]
AsyncStreamNext = Callable[[Call], AsyncIterator[Any]]

KINDS = frozenset({"turn", "tool"})
_ASYNC_HOOKS = ("abefore", "aafter", "aon_error")


class Middleware:
    """One ordered concern around a model turn or a tool call.

    A layer either implements hooks, from which this class derives all four paths (sync, async,
    sync stream, async stream), or overrides the paths it needs (`handle`, `ahandle`,
    `handle_stream`, `ahandle_stream`).

    The hooks are `before(call)` (raise to refuse the call), `after(call, result)` (returns the
    result, possibly replaced) and `on_error(call, exc)` (observes a failure, which is re-raised
    after it). The async paths call the async hooks `abefore`, `aafter` and `aon_error`, which
    default to the sync ones: a layer whose decision needs I/O (a shared ledger, a limiter or
    breaker store, a human approval) writes the decision once in plain helpers and overrides the
    async hooks only to await that I/O. Streams call `before` ahead of the first chunk,
    `after(call, None)` once the stream ends, also when the consumer stops early, and `on_error`
    when it fails; the async stream path calls the async hooks. A hook-only layer whose async
    hooks are not overridden adds no coroutine frame of its own to the async path.

    Attributes:
        name: the layer's name in its stack (defaults to the class name).
        kinds: the call kinds the layer applies to ("turn", "tool"); others skip it.
        order_role: what the layer is to the stack's order checks (`Stack.check`), a class
            attribute: "retry", "budget", "limits", "breaker", "rate_limit", "concurrency",
            "timeout" or "checkpoint" (the built-in layers), or None (the default: no rule).
    """

    name: str = "Middleware"
    kinds: frozenset[str] = KINDS
    order_role: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, *, name: str | None = None, kinds: Any = None) -> None:
        """Set a per-instance `name` and `kinds` (both optional).

        Raises:
            TypeError: `name` is not a string.
            ValueError: `name` is blank or `kinds` holds something other than "turn"/"tool".
        """
        if name is not None:
            self.name = check_name("name", name)
        if kinds is not None:
            if not isinstance(kinds, (str, list, tuple, set, frozenset)):
                raise TypeError(
                    f"kinds must be 'turn', 'tool' or a collection of them, "
                    f"got {type(kinds).__name__}"
                )
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

    async def abefore(self, call: Call) -> None:
        """Async twin of `before`, used by the async paths (defaults to `before`)."""
        self.before(call)

    async def aafter(self, call: Call, result: Any) -> Any:
        """Async twin of `after`, used by the async paths (defaults to `after`)."""
        return self.after(call, result)

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        """Async twin of `on_error`, used by the async paths (defaults to `on_error`)."""
        self.on_error(call, exc)

    def awaits(self) -> bool:
        """Whether this layer's async hooks must be awaited on the async path.

        True when the class overrides `abefore`, `aafter` or `aon_error`. A layer whose async
        hooks only matter for some configurations (a network store, a wait) returns False for
        the others: its compiled async chain then calls the sync hooks directly, without a
        coroutine per hook.
        """
        cls = type(self)
        return any(getattr(cls, h) is not getattr(Middleware, h) for h in _ASYNC_HOOKS)

    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        """This layer's link around `call_next` for `mode`, or None for the derived one.

        The chain compiler asks each layer once per (kind, mode). A layer returns a closure
        that does what its `handle` / `ahandle` would do, with fewer frames on the common path
        (Retry's first attempt, Telemetry without a recording provider); a subclass that
        overrides the paths gets None from the built-in layers, so its overrides run.
        """
        return None

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
        await self.abefore(call)
        try:
            result = await call_next(call)
        except BaseException as exc:
            await self.aon_error(call, exc)
            raise
        return await self.aafter(call, result)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        self.before(call)
        failure: BaseException | None = None
        try:
            yield from call_next(call)
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            if failure is None:
                self.after(call, None)
            else:
                self.on_error(call, failure)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        await self.abefore(call)
        agen = call_next(call)
        failure: BaseException | None = None
        try:
            async for chunk in agen:
                yield chunk
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            await aclose(agen)
            if failure is None:
                await self.aafter(call, None)
            else:
                await self.aon_error(call, failure)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def stream_failure(exc: BaseException) -> BaseException | None:
    """What a stream's "on final" step sees: None when the consumer stopped early.

    `GeneratorExit` means the consumer closed the stream: what it read was delivered, so the
    stream ended for it (usage is reconciled, the breaker counts a success).
    """
    return None if isinstance(exc, GeneratorExit) else exc


def close(gen: Any) -> None:
    """Close an iterator if it can be closed (a generator runs its `finally` at once)."""
    closer = getattr(gen, "close", None)
    if closer is not None:
        closer()


async def aclose(agen: Any) -> None:
    """Close an async iterator if it can be closed (async generators must be closed explicitly)."""
    closer = getattr(agen, "aclose", None)
    if closer is not None:
        await closer()


# The paths and hooks a subclass may override (a layer's `compile_link` yields to any of them).
PATHS = ("before", "after", "on_error", "abefore", "aafter", "aon_error", "handle", "ahandle")


def overrides(layer: Middleware, method: str, base: type[Middleware] | None = None) -> bool:
    """True when `layer`'s class overrides `method` of `base` (default: `Middleware`)."""
    return getattr(type(layer), method) is not getattr(base or Middleware, method)
