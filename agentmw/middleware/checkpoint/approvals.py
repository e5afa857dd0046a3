"""Durable approvals for `Checkpoint`: what a pending approval records about the proposed call,
and how a recorded decision is applied when the thread resumes.

A `require_approval` policy action in a checkpointed session is *durable* when nothing waits
in-process for the answer: the call is sync (it cannot wait), or the call is async and the
layer was built with `approvals="durable"` (the default; `approvals="wait"` keeps async calls
waiting for `session.provide_input`). Policy then raises `ApprovalRequiredError`; the layer
records the step as failed and a pending `ApprovalRecord`, and raises `ApprovalPendingError`.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic_core import to_jsonable_python

from agentmw.core.call import Call
from agentmw.errors import ApprovalRejectedError, ApprovalRequiredError
from agentmw.stores._approvals import ApprovalRecord

__all__: list[str] = []  # the Checkpoint layer's internals

APPROVAL_MODES = ("durable", "wait")


def _type_name(obj: Any) -> str:
    return f"<{type(obj).__module__}.{type(obj).__qualname__}>"


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return None


def bound_arguments(call: Call) -> dict[str, Any]:
    """The call's arguments by parameter name, as JSON values (what a reviewer sees and an
    "edit" replaces). Without a usable signature: {"args": [...], **kwargs}."""
    sig = _signature(call.fn)
    named: dict[str, Any]
    try:
        if sig is None:
            raise TypeError
        named = dict(sig.bind(*call.args, **call.kwargs).arguments)
    except TypeError:
        named = {"args": list(call.args), **call.kwargs} if call.args else dict(call.kwargs)
    data: dict[str, Any] = to_jsonable_python(named, fallback=_type_name)
    return data


def apply_arguments(call: Call, edited: dict[str, Any]) -> None:
    """Replace the call's arguments with `edited` (parameter name -> value), placing each by
    its parameter's kind (positional-only, *args and **kwargs included)."""
    sig = _signature(call.fn)
    params = {} if sig is None else dict(sig.parameters)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, value in edited.items():
        param = params.get(name)
        if param is None:
            if sig is None and name == "args" and isinstance(value, list):
                args.extend(value)
            else:
                kwargs[name] = value  # an unknown name: the function reports it
        elif param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        elif param.kind is param.VAR_POSITIONAL:
            args.extend(value)
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[name] = value
    call.args, call.kwargs = tuple(args), kwargs


def pending_approval(
    call: Call, thread_id: str, step: int, exc: BaseException
) -> ApprovalRecord | None:
    """The pending approval to record when `exc` asks for one durably, else None."""
    if call.approval != "durable" or not isinstance(exc, ApprovalRequiredError) or exc.refused:
        return None
    return ApprovalRecord(
        thread_id, step, call.kind, call.name, exc.rule, exc.prompt, bound_arguments(call)
    )


def rejection(call: Call, record: ApprovalRecord) -> ApprovalRejectedError:
    return ApprovalRejectedError(
        record.thread_id, record.step, call.kind, call.name, record.rule, record.note
    )
