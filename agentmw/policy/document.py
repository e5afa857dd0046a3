"""Policy documents: the pydantic schema of `PolicyEngine.from_dict` and its inverse.

Loading is linear in the document's size and strict: symbolic operators (`>=`, `not in`...) are
aliases of the named ones, every fact must be one the `Policy` layer provides (or one declared
with `extra_facts`), a boolean is never a number, and every problem is reported at once with its
path (see `agentmw.errors.DocumentError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from agentmw.documents import bulk_load, check_depth, format_path, validate_document
from agentmw.errors import DocumentError
from agentmw.policy.conditions import ORDERING, AllOf, Always, AnyOf, Compare, Condition, Not
from agentmw.policy.facts import FACTS, unknown_fact
from agentmw.policy.rules import Action, Rule

# Symbolic operators, accepted wherever the named ones are (documents are written by people).
ALIASES = {
    "==": "eq",
    "!=": "ne",
    ">": "gt",
    ">=": "ge",
    "<": "lt",
    "<=": "le",
    "not in": "not_in",
}
Loc = tuple[int | str, ...]

__all__: list[str] = []  # used by `PolicyEngine.from_dict` / `to_dict`


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Compare(_Doc):
    op: Literal["eq", "ne", "gt", "ge", "lt", "le"]
    fact: str = Field(min_length=1)
    value: Any


class _Member(_Doc):
    op: Literal["in", "not_in"]
    fact: str = Field(min_length=1)
    values: list[Any]


class _Contains(_Doc):
    op: Literal["contains"]
    fact: str = Field(min_length=1)
    value: Any


class _All(_Doc):
    op: Literal["all"]
    conditions: list[_Cond] = Field(min_length=1)


class _Any(_Doc):
    op: Literal["any"]
    conditions: list[_Cond] = Field(min_length=1)


class _Not(_Doc):
    op: Literal["not"]
    condition: _Cond


class _Always(_Doc):
    op: Literal["always"]


_Cond = Annotated[
    _Compare | _Member | _Contains | _All | _Any | _Not | _Always, Field(discriminator="op")
]


class _Deny(_Doc):
    action: Literal["deny"]
    reason: str = Field(min_length=1)


class _Warn(_Doc):
    action: Literal["warn"]
    message: str = Field(min_length=1)


class _SwitchModel(_Doc):
    action: Literal["switch_model"]
    model: str = Field(min_length=1)


class _RequireApproval(_Doc):
    action: Literal["require_approval"]
    prompt: str = Field(min_length=1)


class _Handoff(_Doc):
    action: Literal["handoff"]
    target_role: str = Field(min_length=1)


class _Abort(_Doc):
    action: Literal["abort"]
    reason: str = Field(min_length=1)


class _Emit(_Doc):
    action: Literal["emit"]
    event: str = Field(min_length=1)


_Act = Annotated[
    _Deny | _Warn | _SwitchModel | _RequireApproval | _Handoff | _Abort | _Emit,
    Field(discriminator="action"),
]

# The field each action's value lives in, as written in documents.
ACTION_FIELDS = {
    "deny": "reason",
    "warn": "message",
    "switch_model": "model",
    "require_approval": "prompt",
    "handoff": "target_role",
    "abort": "reason",
    "emit": "event",
}


class _Rule(_Doc):
    name: str = Field(min_length=1)
    when: _Cond = Field(default_factory=lambda: _Always(op="always"))
    then: list[_Act] = Field(min_length=1)
    priority: StrictInt = 50


class _Policy(_Doc):
    rules: list[_Rule]


for _model in (_All, _Any, _Not, _Rule, _Policy):
    _model.model_rebuild()


def _normalized(data: Any) -> Any:
    """The document with symbolic operators replaced by their names (copied where changed).

    Only the condition trees are visited (`rules[*].when`), on a document whose depth was
    already checked; anything malformed is left for the validator to report.
    """
    rules = data.get("rules") if isinstance(data, Mapping) else None
    if type(rules) is not list:
        return data
    new_rules = [_rule_normalized(rule) for rule in rules]
    if all(a is b for a, b in zip(new_rules, rules, strict=True)):
        return data
    return {**data, "rules": new_rules}


def _rule_normalized(rule: Any) -> Any:
    if not isinstance(rule, Mapping) or "when" not in rule:
        return rule
    when = _condition_normalized(rule["when"])
    return rule if when is rule["when"] else {**rule, "when": when}


def _condition_normalized(cond: Any) -> Any:
    if not isinstance(cond, Mapping):
        return cond
    out: dict[str, Any] | None = None
    op = cond.get("op")
    if type(op) is str:
        named = ALIASES.get(op.strip().lower(), op)
        if named is not op:
            out = {**cond, "op": named}
    parts = cond.get("conditions")
    if type(parts) is list:
        new_parts = [_condition_normalized(c) for c in parts]
        if not all(a is b for a, b in zip(new_parts, parts, strict=True)):
            out = {**(out or cond), "conditions": new_parts}
    inner = cond.get("condition")
    if inner is not None:
        new_inner = _condition_normalized(inner)
        if new_inner is not inner:
            out = {**(out or cond), "condition": new_inner}
    return cond if out is None else out


class _Builder:
    """Turns validated rule documents into conditions, collecting every problem with its path."""

    def __init__(self, facts: frozenset[str]) -> None:
        self.facts = facts
        self.problems: list[tuple[str, str]] = []

    def condition(self, doc: Any, loc: Loc) -> Condition:
        if isinstance(doc, _Compare | _Contains | _Member):
            if doc.fact not in self.facts:
                self.problems.append(
                    (format_path((*loc, "fact")), unknown_fact(doc.fact, self.facts))
                )
            if isinstance(doc, _Member):
                return Compare(doc.fact, doc.op, tuple(doc.values))
            if doc.op in ORDERING and isinstance(doc.value, bool):
                problem = "a boolean is never a number: compare it with eq or ne"
                self.problems.append((format_path((*loc, "value")), problem))
            return Compare(doc.fact, doc.op, doc.value)
        if isinstance(doc, _All | _Any):
            parts = tuple(
                self.condition(c, (*loc, "conditions", i)) for i, c in enumerate(doc.conditions)
            )
            return AllOf(parts) if isinstance(doc, _All) else AnyOf(parts)
        if isinstance(doc, _Not):
            return Not(self.condition(doc.condition, (*loc, "condition")))
        return Always()


def rules_from_dict(
    data: Mapping[str, Any], *, extra_facts: Iterable[str] = (), what: str = "policy document"
) -> list[Rule]:
    """The rules of a `{"rules": [...]}` document.

    Args:
        data: the document.
        extra_facts: fact names supplied by your own code (beside the `Policy` layer's).
        what: how error messages name the document (the file, for `from_file`).

    Raises:
        DocumentError: every problem, each with its path; nothing is returned.
    """
    if isinstance(extra_facts, str):
        raise TypeError("extra_facts must be a list of fact names, not one string")
    extra = frozenset(extra_facts)
    for name in extra:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"extra_facts must hold non-blank fact names, got {name!r}")
    check_depth(data, what)
    with bulk_load():
        return _rules(data, frozenset(FACTS) | extra, what)


def _rules(data: Mapping[str, Any], facts: frozenset[str], what: str) -> list[Rule]:
    doc = validate_document(_Policy, _normalized(data), what, checked=True)
    builder = _Builder(facts)
    rules = []
    first_seen: dict[str, int] = {}
    for index, rule in enumerate(doc.rules):
        if rule.name in first_seen:
            problem = f"rule name {rule.name!r} repeats rules[{first_seen[rule.name]}].name"
            builder.problems.append((f"rules[{index}].name", problem))
        first_seen.setdefault(rule.name, index)
        when = builder.condition(rule.when, ("rules", index, "when"))
        if builder.problems:
            continue  # the document is refused: only its problems are still of use
        then = [Action(a.action, getattr(a, ACTION_FIELDS[a.action])) for a in rule.then]
        rules.append(Rule(rule.name, when, then, rule.priority))
    if builder.problems:
        raise DocumentError(what, builder.problems)
    return rules


def _condition_dict(cond: Condition) -> dict[str, Any]:
    if isinstance(cond, Compare):
        if cond.op in ("in", "not_in"):
            return {"op": cond.op, "fact": cond.fact, "values": list(cond.value)}
        return {"op": cond.op, "fact": cond.fact, "value": cond.value}
    if isinstance(cond, AllOf | AnyOf):
        op = "all" if isinstance(cond, AllOf) else "any"
        return {"op": op, "conditions": [_condition_dict(c) for c in cond.conditions]}
    if isinstance(cond, Not):
        return {"op": "not", "condition": _condition_dict(cond.condition)}
    if isinstance(cond, Always):
        return {"op": "always"}
    raise TypeError(f"a {type(cond).__name__} condition cannot be written to a document")


def rules_to_dict(rules: Iterable[Rule]) -> dict[str, Any]:
    """The document `rules_from_dict` reads (custom callable conditions cannot be written)."""
    return {
        "rules": [
            {
                "name": rule.name,
                "priority": rule.priority,
                "when": _condition_dict(rule.when),
                "then": [{"action": a.kind, ACTION_FIELDS[a.kind]: a.value} for a in rule.then],
            }
            for rule in rules
        ]
    }
