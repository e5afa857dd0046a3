"""`PolicyEngine`, `Rule` and the actions a matching rule triggers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentmw.policy.conditions import (
    Condition,
    Facts,
    as_condition,
)

__all__ = [
    "Action",
    "PolicyEngine",
    "Rule",
    "abort",
    "deny",
    "emit",
    "handoff",
    "require_approval",
    "switch_model",
    "warn",
]

ActionKind = Literal["deny", "warn", "switch_model", "require_approval", "handoff", "abort", "emit"]
ACTION_KINDS: tuple[str, ...] = ActionKind.__args__  # type: ignore[attr-defined]


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
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"rule name must be a non-blank string, got {name!r}")
        actions = (then,) if isinstance(then, Action) else tuple(then)
        if not actions or not all(isinstance(a, Action) for a in actions):
            raise TypeError(f"rule {name!r}: then must be one Action or a non-empty sequence")
        if type(priority) is not int:
            raise TypeError(f"rule {name!r}: priority must be an int, got {priority!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "when", as_condition(when))
        object.__setattr__(self, "then", tuple(Action(a.kind, a.value, name) for a in actions))
        object.__setattr__(self, "priority", priority)


class PolicyEngine:
    """Ordered rules; `evaluate(facts)` returns the actions of every matching rule, in order.

    Rules run by ascending priority (ties keep the given order). Immutable and thread-safe.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        items = list(rules)
        for index, rule in enumerate(items):
            if not isinstance(rule, Rule):
                raise TypeError(f"rules[{index}] must be a Rule, got {type(rule).__name__}")
        names = [r.name for r in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(duplicates)}")
        self.rules: tuple[Rule, ...] = tuple(sorted(items, key=lambda r: r.priority))

    def evaluate(self, facts: Facts) -> list[Action]:
        """The actions of every rule whose condition holds (async conditions raise TypeError)."""
        return [a for rule in self.rules if rule.when.check(facts) for a in rule.then]

    async def aevaluate(self, facts: Facts) -> list[Action]:
        """Async twin of `evaluate`: async conditions are awaited at any depth."""
        out: list[Action] = []
        for rule in self.rules:
            if await rule.when.acheck(facts):
                out.extend(rule.then)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyEngine:
        """Build an engine from a `{"rules": [...]}` document (see docs/layers/policy.md).

        Raises:
            DocumentError: the document is malformed; `path` names the bad part.
        """
        from agentmw.policy.document import engine_from_dict

        return engine_from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> PolicyEngine:
        """`from_dict` on a JSON, TOML or YAML file."""
        from agentmw.documents import load_document

        return cls.from_dict(load_document(path))

    def to_dict(self) -> dict[str, Any]:
        """The document `from_dict` reads (custom callable conditions cannot be written)."""
        from agentmw.policy.document import engine_to_dict

        return engine_to_dict(self)

    def __repr__(self) -> str:
        return f"PolicyEngine(rules=[{', '.join(r.name for r in self.rules)}])"
