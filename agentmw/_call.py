"""`Call`: the one object that flows through a middleware chain."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._usage import Usage

if TYPE_CHECKING:
    from ._agent import Agent
    from ._session import Session

CallKind = Literal["turn", "tool"]


@dataclass(slots=True, eq=False)
class Call:
    """One logical model turn or tool call on its way through the stack.

    Layers read and may rewrite it: Fallback changes `model` (and the `model` keyword), Retry
    bumps `attempt`, Policy may switch the model, Guardrails may replace `args`/`kwargs`.

    Attributes:
        kind: "turn" for a model call, "tool" for a tool call.
        name: the function or tool name.
        fn: the wrapped callable (layers may read its return annotation).
        model: the model of a turn (from the decorator, `run_turn(model=)` or a `model=` kwarg).
        args: positional arguments for `fn`.
        kwargs: keyword arguments for `fn`.
        attempt: 1-based attempt number; Retry increments it.
        step: sequence number inside the session (0 outside a session).
        usage: the call's usage, filled after `fn` returns.
        estimate: the usage estimated before the call (rate limits, budget pre-checks).
        session: the session running the call, if any.
        agent: the session's agent, if any.
        meta: per-layer scratch space for this call.
        stream: True when `fn` is a generator function (the call streams chunks).
        usage_fn: how to read usage from the result (None: built-in extraction).
    """

    kind: CallKind
    name: str
    fn: Callable[..., Any]
    model: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    step: int = 0
    usage: Usage | None = None
    estimate: Usage | None = None
    session: Session | None = None
    agent: Agent | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    usage_fn: Callable[[Any], Usage | None] | None = None

    def set_model(self, model: str) -> None:
        """Switch the model: updates `model` and, when the function takes one, the `model` kwarg."""
        self.model = model
        if "model" in self.kwargs or _takes_model_keyword(self.fn):
            self.kwargs["model"] = model

    def emit(self, name: str, *, detail: str | None = None, **data: Any) -> None:
        """Emit an event about this call on its session (no-op outside a session)."""
        session = self.session
        if session is not None:
            session.emit(
                name,
                step=self.step,
                model=self.model if self.kind == "turn" else None,
                tool=self.name if self.kind == "tool" else None,
                detail=detail,
                data=data or None,
            )
        else:
            from ._events import emit_global

            emit_global(name, step=self.step, model=self.model, detail=detail, data=data or None)


def _takes_model_keyword(fn: Callable[..., Any]) -> bool:
    """True when `fn` accepts `model=`: a defaulted `model` parameter must follow a switch too."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    param = params.get("model")
    if param is not None:
        return param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
    return False
