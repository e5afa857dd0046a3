"""Durable approvals: the record of a call waiting for a human, the `ApprovalSaver` protocol,
and the checks and row codec every saver shares."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from agentmw.errors import CheckpointCorruptError

__all__ = ["ApprovalRecord", "ApprovalSaver"]

ApprovalStatus = Literal["pending", "approved", "rejected", "edited"]
APPROVAL_STATUSES = frozenset({"pending", "approved", "rejected", "edited"})
DECISIONS = ("approve", "reject", "edit")
_DECIDED: dict[str, ApprovalStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "edited",
}


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A call of a checkpointed thread that a policy rule put to a human.

    Attributes:
        thread_id: the durable thread.
        step: the call's step number inside the thread (its checkpoint step).
        kind: "turn" or "tool".
        name: the tool's (or turn's) name.
        rule: the policy rule that required approval.
        prompt: the question put to the human.
        arguments: the proposed call's arguments by parameter name (JSON values).
        status: "pending", "approved", "rejected" or "edited".
        edited_arguments: with "edited", the arguments the call runs with instead.
        note: the reviewer's note, if any.
        requested_at: when the approval was asked for (UTC).
        decided_at: when it was decided (UTC), None while pending.
    """

    thread_id: str
    step: int
    kind: str
    name: str
    rule: str
    prompt: str
    arguments: dict[str, Any]
    status: ApprovalStatus = "pending"
    edited_arguments: dict[str, Any] | None = None
    note: str | None = None
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    decided_at: datetime | None = None


@runtime_checkable
class ApprovalSaver(Protocol):
    """A `CheckpointSaver` that also keeps durable approvals (every agentmw saver does).

    Every method has an async twin named with an `a` prefix.
    """

    def put_approval(self, record: ApprovalRecord) -> None: ...
    def get_approvals(self, thread_id: str) -> list[ApprovalRecord]: ...
    def list_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]: ...
    def resolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord: ...
    async def aput_approval(self, record: ApprovalRecord) -> None: ...
    async def aget_approvals(self, thread_id: str) -> list[ApprovalRecord]: ...
    async def alist_approvals(self, *, pending_only: bool = True) -> list[ApprovalRecord]: ...
    async def aresolve_approval(
        self,
        thread_id: str,
        step: int,
        decision: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ApprovalRecord: ...


def check_decision(decision: Any, arguments: Any, note: Any) -> dict[str, Any] | None:
    """The checked arguments of `resolve_approval` (before any record is read).

    Returns the edited arguments as a plain dict (None unless `decision` is "edit").

    Raises:
        TypeError: `decision` or `note` is not a string, `arguments` is not a mapping with
            string keys, or it is not JSON-serializable.
        ValueError: `decision` is not one of approve, reject, edit; "edit" without
            `arguments`, or `arguments` with another decision.
    """
    if not isinstance(decision, str):
        raise TypeError(
            f"decision must be one of {', '.join(DECISIONS)}; got {type(decision).__name__}"
        )
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    if note is not None and not isinstance(note, str):
        raise TypeError(f"note must be a str or None, got {type(note).__name__}")
    if decision != "edit":
        if arguments is not None:
            raise ValueError(f'arguments are only for decision "edit", not {decision!r}')
        return None
    if arguments is None:
        raise ValueError('decision "edit" needs arguments=... (the call\'s new arguments)')
    if not isinstance(arguments, Mapping) or not all(isinstance(k, str) for k in arguments):
        raise TypeError(
            "arguments must be a mapping of parameter names to values, "
            f"got {type(arguments).__name__}"
        )
    edited = dict(arguments)
    try:
        json.dumps(edited)
    except (TypeError, ValueError) as exc:
        raise TypeError("arguments must be JSON-serializable") from exc
    return edited


def decided_record(
    thread_id: str,
    step: int,
    held: ApprovalRecord | None,
    decision: str,
    edited: dict[str, Any] | None,
    note: str | None,
) -> ApprovalRecord:
    """The record of a decision on a pending approval (arguments checked by `check_decision`).

    Raises:
        ValueError: the thread has no approval at `step`, or it was decided already.
    """
    if held is None:
        raise ValueError(f"thread {thread_id!r} has no approval at step {step}")
    if held.status != "pending":
        raise ValueError(
            f"the approval of step {step} of thread {thread_id!r} is {held.status} already:"
            " only a pending approval can be decided"
        )
    return replace(
        held,
        status=_DECIDED[decision],
        edited_arguments=edited,
        note=note,
        decided_at=datetime.now(UTC),
    )


# -- the row codec shared by the SQL savers ---------------------------------------------------
APPROVAL_COLUMNS = (
    "kind, name, rule, prompt, arguments, status, edited_arguments, note, requested_at, decided_at"
)


def approval_row(r: ApprovalRecord) -> tuple[Any, ...]:
    """(thread_id, step, then `APPROVAL_COLUMNS`) with JSON text and ISO times."""
    edited = None if r.edited_arguments is None else json.dumps(r.edited_arguments)
    decided = None if r.decided_at is None else r.decided_at.isoformat()
    return (
        r.thread_id,
        r.step,
        r.kind,
        r.name,
        r.rule,
        r.prompt,
        json.dumps(r.arguments),
        r.status,
        edited,
        r.note,
        r.requested_at.isoformat(),
        decided,
    )


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def _object(value: Any) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(data, dict):
        raise TypeError("arguments are not an object")
    return data


def approval_from_row(thread_id: str, step: int, row: Sequence[Any]) -> ApprovalRecord:
    """Build a record from `APPROVAL_COLUMNS`; a bad field raises `CheckpointCorruptError`."""
    kind, name, rule, prompt, arguments, status, edited, note, requested, decided = row
    try:
        if kind not in ("turn", "tool") or status not in APPROVAL_STATUSES:
            raise ValueError("unknown kind or approval status")
        for text in (name, rule, prompt):
            if not isinstance(text, str):
                raise TypeError("name, rule or prompt is not text")
        return ApprovalRecord(
            thread_id,
            int(step),
            kind,
            name,
            rule,
            prompt,
            _object(arguments),
            status,
            None if edited is None else _object(edited),
            None if note is None else str(note),
            _ts(requested),
            None if decided is None else _ts(decided),
        )
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointCorruptError(thread_id, step, type(exc).__qualname__) from exc
