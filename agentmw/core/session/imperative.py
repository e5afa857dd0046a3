"""The imperative twins' arguments: what `run_turn` / `run_tool` (and `arun_*`) accept.

`prepare_call` checks them and builds the `Call` and the chain, once for the sync and the async
twin; the twins in `agentmw.core.session.runner` then only run it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any, Literal

from agentmw.core.call import Call, CallKind, plain_call
from agentmw.usage import Usage

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__: list[str] = []

Chain = Callable[[Call], Any]
UsageOption = Usage | Callable[[Any], Usage | None] | None


def prepare_call(
    session: Session,
    kind: CallKind,
    name: str | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    model: str | None,
    usage: UsageOption,
    timeout: float | None,
    mode: Literal["sync", "async"],
) -> tuple[Call, Chain]:
    """The checked `Call` and chain of one `run_*` (`mode="sync"`) or `arun_*` call.

    The one place the rules of the imperative twins are written: a sync twin refuses an async
    `fn`, an async twin adapts a sync one; generators are refused (decorate them instead).
    """
    code = getattr(fn, "__code__", None)  # `code_flags` inline: the usual case, a function
    flags = code.co_flags if type(code) is CodeType else code_flags(fn)
    if mode == "sync" and flags & inspect.CO_COROUTINE:
        raise TypeError(f"run_{kind} got an async function; use `await session.arun_{kind}(...)`")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if flags & _GENERATOR_FLAGS:  # before any adapter, which would hide a generator function
        raise TypeError("run_turn/run_tool take plain functions; decorate generators instead")
    if mode == "async" and not flags & inspect.CO_COROUTINE:
        fn = _awaitable(fn)  # an async adapter around a sync function
    name = _name_of(fn) if kind == "turn" else _check_name(name)
    if usage is None or callable(usage):
        usage_fn = usage
    elif isinstance(usage, Usage):
        fixed = usage
        usage_fn = lambda _result: fixed  # noqa: E731
    else:
        raise TypeError(f"usage must be a Usage or a callable, got {type(usage).__name__}")
    call = plain_call(kind, name, fn, model, args, kwargs, session, usage_fn)
    stack = session.stack if timeout is None else session.stack.with_timeout(timeout)
    # A chain compiled already is read from the stack's cache (`Stack.chain` inline).
    return call, stack._chains.get((kind, mode)) or stack.chain(kind, mode)


def _awaitable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An async adapter around the sync `fn` (the async chain awaits `fn(...)`)."""

    @functools.wraps(fn)
    async def adapter(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return adapter


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def code_flags(fn: Any) -> int:
    """The code flags that say whether `fn` is a coroutine or generator function.

    Reads `__code__` directly (functions, bound methods, wrapt proxies): `inspect`'s three
    predicates cost several microseconds per `run_turn` together. Other callables (partials,
    objects with `__call__`) go through `inspect`, which unwraps them.
    """
    code = getattr(fn, "__code__", None)
    if code is not None:
        return int(code.co_flags)
    flags = 0
    if inspect.iscoroutinefunction(fn):
        flags |= inspect.CO_COROUTINE
    if inspect.isgeneratorfunction(fn):
        flags |= inspect.CO_GENERATOR
    if inspect.isasyncgenfunction(fn):
        flags |= inspect.CO_ASYNC_GENERATOR
    return flags


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"tool name must be a non-blank string, got {name!r}")
    return name
