"""Helpers for layers used outside a stack (`Retry.call`, `CircuitBreaker.call`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentmw._validate import check_callable
from agentmw.core.call import Call, new_call
from agentmw.core.context import current_session


def standalone_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    """A `Call` for a layer used outside a stack (its events go to the current session, if any)."""
    check_callable("fn", fn)
    session = current_session()
    model = kwargs.get("model")
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return new_call(
        "turn",
        name,
        fn,
        model=model if isinstance(model, str) else None,
        args=args,
        kwargs=kwargs,
        session=session,
    )


def run_fn(call: Call) -> Any:
    return call.fn(*call.args, **call.kwargs)


async def arun_fn(call: Call) -> Any:
    return await call.fn(*call.args, **call.kwargs)
