"""Errors raised by the governance layers: Permissions, Guardrails, Policy and OutputSchema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import AgentMWError, ControlFlowError
from ._handoff import Handoff

__all__ = [
    "ApprovalRequiredError",
    "GuardrailViolation",
    "HandoffRequested",
    "OutputValidationError",
    "PermissionDeniedError",
    "PolicyViolationError",
]


class PermissionDeniedError(ControlFlowError):
    """A role may not call a tool (raised by `Permissions` before the tool runs).

    Attributes:
        role: the calling agent's role (None outside a session).
        tool: the tool that was refused.
        reason: why, e.g. "denied by pattern 'fs.*'".
    """

    def __init__(self, role: str | None, tool: str, reason: str) -> None:
        self.role = role
        self.tool = tool
        self.reason = reason
        super().__init__(f"role {role!r} may not call tool {tool!r}: {reason}")


class GuardrailViolation(ControlFlowError):
    """One or more guards blocked a call's input or output.

    Attributes:
        stage: "input" or "output".
        violations: one `(guard name, reason)` pair per blocking guard, in guard order.
        tool: the tool name for tool calls, else None.
    """

    def __init__(
        self, stage: str, violations: Sequence[tuple[str, str]], tool: str | None = None
    ) -> None:
        self.stage = stage
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)
        self.tool = tool
        names = ", ".join(name for name, _ in self.violations)
        where = f" of tool {tool!r}" if tool else ""
        super().__init__(f"{stage}{where} blocked by {names}")

    @property
    def guards(self) -> list[str]:
        """The names of the blocking guards."""
        return [name for name, _ in self.violations]


class PolicyViolationError(ControlFlowError):
    """A policy rule denied or aborted the call.

    Attributes:
        rule: the name of the rule whose action fired.
        reason: the reason the rule gives.
        action: "deny" or "abort".
    """

    def __init__(self, rule: str, reason: str, action: str = "deny") -> None:
        self.rule = rule
        self.reason = reason
        self.action = action
        super().__init__(f"policy rule {rule!r} ({action}): {reason}")


class ApprovalRequiredError(ControlFlowError):
    """A rule requires human approval and the call runs synchronously (it cannot wait).

    Async calls wait in WAITING_FOR_INPUT instead; a refused approval raises this too.

    Attributes:
        rule: the rule requiring approval.
        prompt: the question put to the human.
        refused: True when a human answered no (async), False when nobody could be asked.
    """

    def __init__(self, rule: str, prompt: str, *, refused: bool = False) -> None:
        self.rule = rule
        self.prompt = prompt
        self.refused = refused
        verb = "was refused" if refused else "requires approval (run the call async to wait)"
        super().__init__(f"policy rule {rule!r} {verb}")


class HandoffRequested(ControlFlowError):
    """A policy rule hands the work to another role; the agent loop catches this.

    Attributes:
        handoff: the `Handoff` to pass on.
        rule: the rule that asked for it.
    """

    def __init__(self, handoff: Handoff, rule: str) -> None:
        self.handoff = handoff
        self.rule = rule
        super().__init__(f"policy rule {rule!r} hands off to {handoff.target_role!r}")


class OutputValidationError(AgentMWError):
    """A call's output did not parse or validate (classified `output_invalid`, so Retry re-asks).

    Not a control-flow error on purpose: asking the model again is the usual fix.

    Attributes:
        target: the name of the expected type.
        errors: the validation error count (details stay out of events).
    """

    def __init__(self, target: str, errors: int = 1, detail: Any = None) -> None:
        self.target = target
        self.errors = errors
        self.detail = detail
        super().__init__(f"output does not validate as {target} ({errors} error(s))")
