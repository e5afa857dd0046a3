"""Chain compilation: the terminals that call the user's function, and one link per layer.

A `Stack` compiles one chain per (kind, mode) with `compile_chain` and caches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from agentmw.core.call import Call
from agentmw.core.context import CURRENT_CALL
from agentmw.core.middleware import Middleware, aclose, close, overrides
from agentmw.usage import chunk_chars, combine_stream_usage, estimate_stream_usage, extract_usage

__all__: list[str] = []  # internal: `Stack.chain` is the public face (layers use derived_link)


# -- terminals: the innermost step, which calls the user's function ---------------------------
# Each one sets `current_call()` while the function's own code runs (for a generator: around
# each step of it, so the consumer between chunks never sees it).
def invoke_kwargs(call: Call) -> dict[str, Any]:
    """The keywords for `fn`: with `idempotency_key` when the function declares it."""
    if not call.takes_idempotency_key or "idempotency_key" in call.kwargs:
        return call.kwargs
    return {**call.kwargs, "idempotency_key": idempotency_key(call)}


def idempotency_key(call: Call) -> str:
    """The call's idempotency key; one is made (and kept for later attempts) when none is set."""
    key = call.idempotency_key
    if key is None:
        import uuid  # only for functions that take a key: `import agentmw` stays light

        key = call.idempotency_key = f"agentmw-{uuid.uuid4().hex}"
    return key


def _terminal(call: Call) -> Any:
    token = CURRENT_CALL.set(call)
    try:
        # `invoke_kwargs` only for a function that takes a key: no frame for the usual call.
        kwargs = invoke_kwargs(call) if call.takes_idempotency_key else call.kwargs
        result = call.fn(*call.args, **kwargs)
    finally:
        CURRENT_CALL.reset(token)
    ufn = call.usage_fn
    call.usage = ufn(result) if ufn is not None else extract_usage(result)
    return result


async def _aterminal(call: Call) -> Any:
    token = CURRENT_CALL.set(call)
    try:
        kwargs = invoke_kwargs(call) if call.takes_idempotency_key else call.kwargs
        result = await call.fn(*call.args, **kwargs)
    finally:
        CURRENT_CALL.reset(token)
    ufn = call.usage_fn
    call.usage = ufn(result) if ufn is not None else extract_usage(result)
    return result


class _StreamUsage:
    """A stream's usage: read from the chunks that carry it, else estimated from its text."""

    __slots__ = ("call", "chars", "read")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.read = call.usage_fn or extract_usage
        self.chars = 0

    def see(self, chunk: Any) -> None:
        usage = self.read(chunk)
        if usage is not None:
            self.call.usage = combine_stream_usage(self.call.usage, usage)
        self.chars += chunk_chars(chunk)

    def settle(self) -> None:
        # A stream that never reported usage still spent tokens: estimate them, and say so.
        call = self.call
        if call.usage is None:
            call.usage = estimate_stream_usage(call.args, call.kwargs, self.chars)
            call.usage_estimated = True


_DONE = object()


def _terminal_stream(call: Call) -> Iterator[Any]:
    gen = call.fn(*call.args, **invoke_kwargs(call))
    usage = _StreamUsage(call)
    try:
        while True:
            token = CURRENT_CALL.set(call)
            try:
                chunk = next(gen, _DONE)
            finally:
                CURRENT_CALL.reset(token)
            if chunk is _DONE:
                break
            usage.see(chunk)
            yield chunk
    finally:
        close(gen)
        usage.settle()


async def _aterminal_stream(call: Call) -> AsyncIterator[Any]:
    agen = call.fn(*call.args, **invoke_kwargs(call))
    usage = _StreamUsage(call)
    try:
        while True:
            token = CURRENT_CALL.set(call)
            try:
                chunk = await agen.__anext__()
            except StopAsyncIteration:
                break
            finally:
                CURRENT_CALL.reset(token)
            usage.see(chunk)
            yield chunk
    finally:
        await aclose(agen)
        usage.settle()


_TERMINALS: dict[str, Callable[[Call], Any]] = {
    "sync": _terminal,
    "async": _aterminal,
    "stream": _terminal_stream,
    "astream": _aterminal_stream,
}
_METHODS = {
    "sync": "handle",
    "async": "ahandle",
    "stream": "handle_stream",
    "astream": "ahandle_stream",
}
_HOOKS = ("before", "after", "on_error")


def _link(layer: Middleware, mode: str, nxt: Callable[[Call], Any]) -> Callable[[Call], Any]:
    """One link of a chain: the layer's own (`compile_link`), else the derived one."""
    compiled = layer.compile_link(mode, nxt)
    return compiled if compiled is not None else derived_link(layer, mode, nxt)


def derived_link(layer: Middleware, mode: str, nxt: Callable[[Call], Any]) -> Callable[[Call], Any]:
    """The link derived from a layer's paths and hooks: tight closures for hook-only layers,
    no link for no-op ones. A `compile_link` falls back on it for its uncommon cases."""
    method = _METHODS[mode]
    if not overrides(layer, method) and (mode in ("sync", "stream") or not layer.awaits()):
        # Hook-only on this path, and on the async path no hook needs awaiting: the sync hooks
        # run directly (no coroutine per hook).
        if not any(overrides(layer, hook) for hook in _HOOKS):
            return nxt  # overrides nothing on this path: a no-op layer costs nothing
        if mode in ("sync", "async"):
            return _hooks(layer, nxt, mode == "async")
    handle = getattr(layer, method)

    # A plain function returning what `handle` returns (a value, coroutine or iterator): no extra
    # coroutine frame per layer on the async path.
    def link(call: Call) -> Any:
        return handle(call, nxt)

    return link


def _hooks(layer: Middleware, nxt: Callable[[Call], Any], is_async: bool) -> Callable[[Call], Any]:
    """A hook-only layer's sync hooks around `nxt`, skipping the ones it does not implement.

    A before-only layer adds no frame of its own on either path: it returns what `nxt` returns
    (on the async path, the next link's awaitable, awaited by our caller).
    """
    before, after, on_error = layer.before, layer.after, layer.on_error
    if not overrides(layer, "after") and not overrides(layer, "on_error"):

        def before_only(call: Call) -> Any:
            before(call)
            return nxt(call)

        return before_only
    if not overrides(layer, "after"):  # a refusal-aware layer (Limits): no `after` to call
        return _before_on_error(before, on_error, nxt, is_async)
    if not is_async:

        def hooks(call: Call) -> Any:
            before(call)
            try:
                result = nxt(call)
            except BaseException as exc:
                on_error(call, exc)
                raise
            return after(call, result)

        return hooks

    async def ahooks(call: Call) -> Any:
        before(call)
        try:
            result = await nxt(call)
        except BaseException as exc:
            on_error(call, exc)
            raise
        return after(call, result)

    return ahooks


def _before_on_error(
    before: Callable[[Call], Any],
    on_error: Callable[[Call, BaseException], Any],
    nxt: Callable[[Call], Any],
    is_async: bool,
) -> Callable[[Call], Any]:
    if not is_async:

        def guarded(call: Call) -> Any:
            before(call)
            try:
                return nxt(call)
            except BaseException as exc:
                on_error(call, exc)
                raise

        return guarded

    async def aguarded(call: Call) -> Any:
        before(call)
        try:
            return await nxt(call)
        except BaseException as exc:
            on_error(call, exc)
            raise

    return aguarded


def is_terminal(nxt: Callable[[Call], Any], mode: str) -> bool:
    """Whether `nxt` is the terminal of `mode`: a layer's compiled link may then call the
    function itself (`invoke_kwargs`, `CURRENT_CALL`, `extract_usage`, as `_aterminal` does)
    and save the terminal's coroutine."""
    return nxt is _TERMINALS[mode]


def compile_chain(layers: Iterable[Middleware], kind: str, mode: str) -> Callable[[Call], Any]:
    """Fold `layers` (first = outermost) around the terminal for one kind and mode."""
    nxt = _TERMINALS[mode]
    for layer in reversed([x for x in layers if kind in x.kinds]):
        nxt = _link(layer, mode, nxt)
    return nxt
