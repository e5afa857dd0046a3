"""Policy rules: a condition and the actions a match triggers (deny, warn, switch_model...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentmw._validate import check_name
from agentmw.policy.conditions import (
    Condition,
    Facts,
    as_condition,
)

ActionKind = Literal["deny", "warn", "switch_model", "require_approval", "handoff", "abort", "emit"]
ACTION_KINDS: tuple[str, ...] = ActionKind.__args__  # type: ignore[attr-defined]


__all__ = [
    "Action",
    "Rule",
    "abort",
    "deny",
    "emit",
    "handoff",
    "require_approval",
    "switch_model",
    "warn",
]


@dataclass(frozen=True, slots=True)
class Action:
    """What a matching rule does. Build with `deny`, `warn`, `switch_model`... .

    Attributes:
        kind: one of deny, warn, switch_model, require_approval, handoff, abort, emit.
        value: the reason, message, model, prompt, target role or event name.
        rule: the name of the rule that produced it (set by `PolicyEngine.evaluate`).
    """

    kind: ActionKind
    value: str
    rule: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"action kind must be one of {', '.join(ACTION_KINDS)}")
        if not isinstance(self.value, str) or not self.value.strip():
            raise ValueError(f"{self.kind} needs a non-blank string, got {self.value!r}")


def deny(reason: str) -> Action:
    """Refuse the call with `PolicyViolationError`."""
    return Action("deny", reason)


def warn(message: str) -> Action:
    """Emit a `policy.warning` event and let the call run."""
    return Action("warn", message)


def switch_model(name: str) -> Action:
    """Run the turn on model `name` instead."""
    return Action("switch_model", name)


def require_approval(prompt: str) -> Action:
    """Ask a human first (async: wait for `provide_input`; sync: `ApprovalRequiredError`)."""
    return Action("require_approval", prompt)


def handoff(target_role: str) -> Action:
    """Hand the work to `target_role` (raises `HandoffRequested` carrying the `Handoff`)."""
    return Action("handoff", target_role)


def abort(reason: str) -> Action:
    """Fail the whole session and refuse the call with `PolicyViolationError`."""
    return Action("abort", reason)


def emit(event_name: str) -> Action:
    """Emit the event `event_name` and let the call run."""
    return Action("emit", event_name)


@dataclass(frozen=True, slots=True, init=False)
class Rule:
    """When `when` holds, apply `then` (one action or several). Lower `priority` runs first."""

    name: str
    when: Condition
    then: tuple[Action, ...]
    priority: int

    def __init__(
        self,
        name: str,
        when: Condition | Callable[[Facts], Any] | bool,
        then: Action | Sequence[Action],
        priority: int = 50,
    ) -> None:
        check_name("name", name)
        if isinstance(then, Action):
            actions: tuple[Action, ...] = (then,)
        elif isinstance(then, (list, tuple)):
            actions = tuple(then)
        else:
            kind = type(then).__name__
            raise TypeError(f"rule {name!r}: then must be an Action or a list of them, got {kind}")
        if not actions:
            raise ValueError(f"rule {name!r}: then must hold at least one Action")
        if not all(isinstance(a, Action) for a in actions):
            raise TypeError(f"rule {name!r}: then must hold only Actions")
        if type(priority) is not int:
            raise TypeError(f"rule {name!r}: priority must be an int, got {priority!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "when", as_condition(when))
        object.__setattr__(self, "then", tuple(Action(a.kind, a.value, name) for a in actions))
        object.__setattr__(self, "priority", priority)
