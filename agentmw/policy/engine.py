"""`PolicyEngine`: ordered rules evaluated on the facts of a call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentmw.documents import load_document
from agentmw.policy.conditions import Facts
from agentmw.policy.document import rules_from_dict, rules_to_dict
from agentmw.policy.rules import Action, Rule

__all__ = ["PolicyEngine"]


class PolicyEngine:
    """Ordered rules; `evaluate(facts)` returns the actions of every matching rule, in order.

    Rules run by ascending priority (ties keep the given order). Immutable and thread-safe.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        if isinstance(rules, (str, bytes, Rule)) or not isinstance(rules, Iterable):
            raise TypeError(f"rules must be a list of Rule, got {type(rules).__name__}")
        items = list(rules)
        for index, rule in enumerate(items):
            if not isinstance(rule, Rule):
                raise TypeError(f"rules[{index}] must be a Rule, got {type(rule).__name__}")
        seen: set[str] = set()
        repeated: set[str] = set()
        for rule in items:
            (repeated if rule.name in seen else seen).add(rule.name)
        duplicates = sorted(repeated)
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
    def from_dict(cls, data: Mapping[str, Any], *, extra_facts: Iterable[str] = ()) -> PolicyEngine:
        """Build an engine from a `{"rules": [...]}` document (see docs/layers/policy.md).

        Args:
            data: the document.
            extra_facts: names of facts your own code supplies (`engine.evaluate(facts)` on
                facts you build); any other fact the `Policy` layer does not provide is an error.

        Raises:
            DocumentError: the document is malformed; `path` names the first bad part and the
                message lists every problem (the first 20 of them).
        """
        return cls(rules_from_dict(data, extra_facts=extra_facts))

    @classmethod
    def from_file(cls, path: str | Path, *, extra_facts: Iterable[str] = ()) -> PolicyEngine:
        """`from_dict` on a JSON, TOML or YAML file; errors name the file."""
        what = f"policy document {path}"
        data = load_document(path, "policy document")
        return cls(rules_from_dict(data, extra_facts=extra_facts, what=what))

    def to_dict(self) -> dict[str, Any]:
        """The document `from_dict` reads (custom callable conditions cannot be written)."""
        return rules_to_dict(self.rules)

    def __repr__(self) -> str:
        return f"PolicyEngine(rules=[{', '.join(r.name for r in self.rules)}])"
