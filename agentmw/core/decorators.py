"""`@agent_turn` and `@agent_tool`: run any callable through a stack (built on wrapt)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar, overload

from agentmw.core.call import EFFECTS, LIVE_STREAM, Call, CallKind, Effects, call_builder
from agentmw.core.context import CURRENT_SESSION, OPEN_SESSIONS, outside_session
from agentmw.core.middleware import Middleware, aclose
from agentmw.core.stack import Mode, Stack, get_default_stack
from agentmw.usage import Usage

__all__ = ["agent_tool", "agent_turn"]

F = TypeVar("F", bound=Callable[..., Any])


def _mode_of(fn: Any) -> Mode:
    inner = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    if inspect.isasyncgenfunction(inner):
        return "astream"
    if inspect.iscoroutinefunction(inner):
        return "async"
    if inspect.isgeneratorfunction(inner):
        return "stream"
    if not callable(inner):
        raise TypeError(f"agent_turn/agent_tool need a callable, got {type(fn).__name__}")
    return "sync"


ModelGetter = Callable[[tuple[Any, ...], Any], "str | None"]
ModelFiller = Callable[[tuple[Any, ...], dict[str, Any], Any], None]


def _model_param(fn: Any) -> tuple[int, inspect.Parameter, int] | None:
    """The function's own `model` parameter: (index, parameter, self/cls offset), or None."""
    inner = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    try:
        params = list(inspect.signature(inner).parameters.values())
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return None
    found = next(((i, p) for i, p in enumerate(params) if p.name == "model"), None)
    if found is None or found[1].kind in (found[1].VAR_KEYWORD, found[1].VAR_POSITIONAL):
        return None
    # A bound method's `self`/`cls` is not in `args` (wrapt passes it as `instance`).
    skip = int(
        not isinstance(fn, staticmethod) and bool(params) and params[0].name in ("self", "cls")
    )
    return found[0], found[1], skip


def _model_filler(fn: Any, model: str | None) -> ModelFiller | None:
    """How `@agent_turn(model=...)` hands its model to a function that takes a `model` argument.

    When the caller passes no model, the decorator's model is passed as `model=` (so a required
    `*, model` parameter works, and the function sends the model the stack sees). Decided once;
    None when there is nothing to fill (the common, free case).
    """
    found = _model_param(fn) if model is not None else None
    if found is None:
        return None
    index, param, skip = found
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    if param.kind is param.POSITIONAL_ONLY:
        return None  # cannot be passed by keyword; its default (if any) stands

    def fill(args: tuple[Any, ...], kwargs: dict[str, Any], instance: Any) -> None:
        if "model" in kwargs:
            return
        if positional and len(args) > index - (skip if instance is not None else 0):
            return  # passed by position
        kwargs["model"] = model

    return fill


def _model_getter(fn: Any) -> ModelGetter | None:
    """How to read a turn's model from the function's own `model` parameter, decided once.

    Returns None when the function has no `model` parameter (the common, free case). Otherwise
    the getter reads a positionally passed model, else the parameter's string default.
    """
    found = _model_param(fn)
    if found is None:
        return None
    index, param, skip = found
    default = param.default if isinstance(param.default, str) else None
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)

    def get(args: tuple[Any, ...], instance: Any) -> str | None:
        if positional:
            pos = index - (skip if instance is not None else 0)
            value = args[pos] if 0 <= pos < len(args) else None
            if isinstance(value, str):
                return value
        return default

    return get


def _takes_idempotency_key(fn: Any) -> bool:
    """The function declares a parameter named `idempotency_key` (passable by keyword)."""
    inner = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    try:
        param = inspect.signature(inner).parameters.get("idempotency_key")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _check_key(value: Any) -> Callable[[Call], str] | None:
    """`checkpoint_key=`: None or a callable call -> str."""
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    from agentmw._validate import check_callable  # only to word the error

    return check_callable("checkpoint_key", value, "a callable call -> str")


def _tool_call_id(value: Any) -> str | None:
    """A tool call id given at call time: a non-blank string, or None."""
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    from agentmw._validate import check_name

    return check_name("tool_call_id", value)  # raises, naming what is allowed


def build_wrapper(
    fn: Any,
    kind: CallKind,
    name: str | None,
    model: str | None,
    stack: Stack | Iterable[Middleware] | None,
    usage: Callable[[Any], Usage | None] | None,
    *,
    provider: str | None = None,
    model_from_kwargs: bool = True,
    effects: Effects = "idempotent",
    checkpoint_key: Callable[[Call], str] | None = None,
    live_stream: bool = False,
) -> Any:
    """Wrap `fn` so each call runs as a turn or tool call (internal: `agent_turn`,
    `agent_tool` and the SDK integrations build on it).

    Everything is decided here, once: the mode, the name, the fixed stack. `provider` tags each
    call (integrations set it); `model_from_kwargs=False` ignores a `model=` keyword.
    """
    import wrapt  # on the first decorated function, not at `import agentmw`

    mode = _mode_of(fn)
    inner = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    call_name = name or getattr(inner, "__name__", None) or type(inner).__name__
    if live_stream:
        setattr(getattr(inner, "__func__", inner), LIVE_STREAM, True)
    fixed = stack if stack is None or isinstance(stack, Stack) else Stack(stack)
    if usage is not None and not callable(usage):
        raise TypeError(f"usage must be a callable result -> Usage, got {type(usage).__name__}")
    get_session = CURRENT_SESSION.get
    is_turn = kind == "turn" and model_from_kwargs
    fixed_model = model if kind == "turn" else None
    stream = mode in ("stream", "astream")
    model_of = _model_getter(fn) if is_turn and model is None else None
    fill_model = _model_filler(fn, fixed_model)
    is_tool = kind == "tool"
    warned = [False]  # this function's outside-session warning was given
    open_sessions = OPEN_SESSIONS
    build = call_builder(
        kind,
        call_name,
        stream=stream,
        usage_fn=usage,
        provider=provider,
        effects=effects,
        checkpoint_key=checkpoint_key,
        takes_idempotency_key=_takes_idempotency_key(fn),
    )

    def start(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> tuple[Call, Any]:
        # The per-call hot path: one Call, a cached chain, no keyword binding.
        if fill_model is not None:
            fill_model(args, kwargs, instance)
        # A tool's `tool_call_id=` is the provider's id of the call, for agentmw only.
        call_id = _tool_call_id(kwargs.pop("tool_call_id", None)) if is_tool else None
        session = get_session()
        if session is None and open_sessions[0]:
            outside_session(call_name, warned)  # warns once, or raises NoSessionError
        st = fixed or (session.stack if session is not None else get_default_stack())
        chain = st.chain(kind, mode)
        call_model = (
            (kwargs.get("model") or model or (model_of and model_of(args, instance)))
            if is_turn
            else fixed_model
        )
        return build(wrapped, call_model, args, kwargs, session, call_id), chain

    if mode == "sync":

        def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call, chain = start(wrapped, instance, args, kwargs)
            session = call.session
            return chain(call) if session is None else session.run_chain(call, chain)

        return _wrap(wrapt, fn, sync_wrapper)

    if mode == "async":

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call, chain = start(wrapped, instance, args, kwargs)
            session = call.session
            if session is None:
                return await chain(call)
            return await session.arun_chain(call, chain)

        return _wrap(wrapt, fn, async_wrapper)

    if mode == "stream":

        def stream_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Iterator[Any]:
            call, chain = start(wrapped, instance, args, kwargs)
            session = call.session
            yield from (chain(call) if session is None else session.run_stream(call, chain))

        return _wrap(wrapt, fn, stream_wrapper)

    async def astream_wrapper(
        wrapped: Any, instance: Any, args: Any, kwargs: Any
    ) -> AsyncIterator[Any]:
        call, chain = start(wrapped, instance, args, kwargs)
        session = call.session
        agen = chain(call) if session is None else session.arun_stream(call, chain)
        try:
            async for chunk in agen:
                yield chunk
        finally:
            await aclose(agen)

    return _wrap(wrapt, fn, astream_wrapper)


def _wrap(wrapt: Any, fn: Any, wrapper: Callable[[Any, Any, Any, Any], Any]) -> Any:
    """`wrapt.FunctionWrapper(fn, wrapper)`, with a direct call for a plain function.

    wrapt's call of a function wrapper asks the wrapped object for `__self__` (a function
    wrapped after binding carries its instance there); a plain function has none, so every
    call raised and cleared an AttributeError inside wrapt: about 1 µs of a turn. For a
    function without `__self__` (neither bound nor a class/static method object) the wrapper
    class is made per decorated function, with a `__call__` that calls `wrapper` directly;
    method binding (`obj.method`), introspection and `__wrapped__` stay wrapt's.
    """
    if isinstance(fn, (classmethod, staticmethod)) or hasattr(fn, "__self__"):
        return wrapt.FunctionWrapper(fn, wrapper)

    class DirectFunctionWrapper(wrapt.FunctionWrapper):  # type: ignore[misc]
        def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
            return wrapper(fn, None, args, kwargs)

    return DirectFunctionWrapper(fn, wrapper)


@overload
def agent_turn(fn: F, /) -> F: ...
@overload
def agent_turn(
    *,
    model: str | None = None,
    name: str | None = None,
    stack: Stack | Iterable[Middleware] | None = None,
    usage: Callable[[Any], Usage | None] | None = None,
    checkpoint_key: Callable[[Call], str] | None = None,
) -> Callable[[F], F]: ...
def agent_turn(
    fn: Any = None,
    /,
    *,
    model: str | None = None,
    name: str | None = None,
    stack: Stack | Iterable[Middleware] | None = None,
    usage: Callable[[Any], Usage | None] | None = None,
    checkpoint_key: Callable[[Call], str] | None = None,
) -> Any:
    """Run a model-call function as a turn through the stack.

    Usable bare (`@agent_turn`) or with options. Works on sync and async functions, sync and async
    generator functions (streaming), methods, classmethods and staticmethods. The stack is the
    decorator's `stack=`, else the current session's agent stack, else the process default.

    Args:
        model: the default model name. A `model=` keyword passed at call time (what the
            function actually sends) takes precedence; with neither, the function's own
            `model` parameter (a positional argument or its default) is used.
        name: the turn's name (default: the function's `__name__`).
        stack: a fixed stack for this function.
        usage: result -> Usage; default: built-in extraction (`Usage`, or a `usage` field).
        checkpoint_key: call -> str: what `Checkpoint` matches a resumed call on instead of
            the argument fingerprint (for example the prompt without its timestamp).

    Raises:
        TypeError: `checkpoint_key` is not a callable.
    """
    if fn is not None:
        return build_wrapper(fn, "turn", None, None, None, None)
    key = _check_key(checkpoint_key)
    return lambda f: build_wrapper(f, "turn", name, model, stack, usage, checkpoint_key=key)


@overload
def agent_tool(fn: F, /) -> F: ...
@overload
def agent_tool(
    *,
    name: str | None = None,
    stack: Stack | Iterable[Middleware] | None = None,
    effects: Effects = "idempotent",
    checkpoint_key: Callable[[Call], str] | None = None,
) -> Callable[[F], F]: ...
def agent_tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    stack: Stack | Iterable[Middleware] | None = None,
    effects: Effects = "idempotent",
    checkpoint_key: Callable[[Call], str] | None = None,
) -> Any:
    """Run a tool function as a tool call through the stack (see `agent_turn`).

    A call may pass `tool_call_id="..."` (the provider's id of the tool call being answered):
    agentmw takes it (into `call.tool_call_id`, Telemetry's `gen_ai.tool.call.id` and the
    tool events' data) and never passes it to the function.

    A function that declares an `idempotency_key` parameter receives the call's key as that
    keyword (also readable as `agentmw.current_call().idempotency_key`).

    Args:
        name: the tool's name (default: the function's `__name__`); permissions match on it.
        stack: a fixed stack for this function.
        effects: what running it twice does, for a resumed thread whose step was in flight:
            "pure" (nothing), "idempotent" (the default: the external API dedupes on the
            idempotency key, so it reruns with the same key) or "once" (never rerun on its
            own: the resume raises `InFlightStepError` until the step is resolved).
        checkpoint_key: call -> str: what `Checkpoint` matches a resumed call on instead of
            the argument fingerprint.

    Raises:
        TypeError: `effects` is not a string or `checkpoint_key` is not a callable.
        ValueError: `effects` is not "pure", "idempotent" or "once".
    """
    if fn is not None:
        return build_wrapper(fn, "tool", None, None, None, None)
    chosen: Effects = "idempotent"
    if effects != "idempotent" or not isinstance(effects, str):
        from agentmw._validate import check_choice

        chosen = check_choice("effects", effects, EFFECTS)  # type: ignore[assignment]
    key = _check_key(checkpoint_key)
    return lambda f: build_wrapper(
        f, "tool", name, None, stack, None, effects=chosen, checkpoint_key=key
    )
