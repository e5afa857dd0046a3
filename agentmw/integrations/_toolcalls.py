"""The call path the framework adapters share: one `Call` through the stack, with or without
a session, and what a refused tool call tells the model.

The same steps as a decorated function (`agentmw.core.decorators.build_wrapper`): the stack is
the adapter's fixed `stack`, else the current session's, else the process default; inside a
session the session runs and accounts for the call. Adapters build a fresh function per call
(it closes over the framework's context), so they start the call here instead of wrapping
once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from agentmw.core.call import Call, CallKind, new_call
from agentmw.core.context import CURRENT_SESSION
from agentmw.core.stack import Stack, get_default_stack
from agentmw.errors import (
    ApprovalRejectedError,
    ApprovalRequiredError,
    GuardrailViolation,
    LimitExceededError,
    PermissionDeniedError,
    PolicyViolationError,
)
from agentmw.usage import Usage

__all__: list[str] = []  # internal: the framework adapters build on it

# The refusals of a tool call that the model can read (on_refusal="message"). Everything else
# (budget, circuit open, rate limit, replay divergence, a durable approval still pending:
# `ApprovalPendingError`...) ends the run with the agentmw error.
REFUSALS: tuple[type[Exception], ...] = (
    PermissionDeniedError,
    GuardrailViolation,
    LimitExceededError,
    PolicyViolationError,
    ApprovalRequiredError,
    ApprovalRejectedError,
)
ON_REFUSAL = ("message", "raise")


def is_refusal(exc: BaseException) -> bool:
    """A refusal the model reads; a policy rule that aborts means the run, not this call."""
    if isinstance(exc, PolicyViolationError):
        return exc.action != "abort"
    return isinstance(exc, REFUSALS)


def refusal_text(exc: Exception) -> str:
    """What the model reads about a refused tool call: the refusal's type and reason.

    Built from the error's structured fields (pattern, guard, limit, rule names), never from
    the tool's arguments or result, so nothing the guards caught is echoed back.
    """
    kind = type(exc).__name__
    if isinstance(exc, PermissionDeniedError):
        why = exc.reason
    elif isinstance(exc, GuardrailViolation):
        stage = "arguments" if exc.stage == "input" else "result"
        why = f"{stage} blocked by " + ", ".join(f"{g} ({r})" for g, r in exc.violations)
    elif isinstance(exc, LimitExceededError):
        why = f"{exc.limit} reached (limit {exc.ceiling})"
    elif isinstance(exc, PolicyViolationError):
        why = f"policy rule {exc.rule!r} ({exc.action}): {exc.reason}"
    elif isinstance(exc, ApprovalRequiredError):
        why = f"policy rule {exc.rule!r} requires approval"
    elif isinstance(exc, ApprovalRejectedError):
        # The reviewer's note is written for whoever proposed the call: the model reads it.
        note = f"; reviewer's note: {exc.note}" if exc.note else ""
        why = f"rejected by its reviewer (policy rule {exc.rule!r}){note}"
    else:
        why = "refused"
    return f"agentmw refused this tool call: {kind}: {why}"


def start(
    kind: CallKind,
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    stack: Stack | None,
    mode: Literal["async", "astream"],
    *,
    model: str | None = None,
    provider: str | None = None,
    usage_fn: Callable[[Any], Usage | None] | None = None,
    tool_call_id: str | None = None,
) -> tuple[Call, Any]:
    """The `Call` of one framework call and the chain it runs through."""
    session = CURRENT_SESSION.get()
    st = stack or (session.stack if session is not None else get_default_stack())
    call = new_call(
        kind,
        name,
        fn,
        model=model,
        args=args,
        kwargs=kwargs,
        session=session,
        stream=mode == "astream",
        usage_fn=usage_fn,
        provider=provider,
        tool_call_id=tool_call_id,
    )
    return call, st.chain(kind, mode)


async def arun(call: Call, chain: Any) -> Any:
    """Run a started call (its session accounts for it when it has one)."""
    session = call.session
    if session is None:
        return await chain(call)
    return await session.arun_chain(call, chain)


def astream(call: Call, chain: Any) -> AsyncIterator[Any]:
    """Stream a started call (its session accounts for it when the stream ends)."""
    session = call.session
    return chain(call) if session is None else session.arun_stream(call, chain)
