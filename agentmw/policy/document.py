"""Policy documents: the pydantic schema of `PolicyEngine.from_dict` and its inverse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmw.documents import validate_document
from agentmw.policy.conditions import AllOf, Always, AnyOf, Compare, Condition, Not
from agentmw.policy.rules import Action, Rule

__all__: list[str] = []  # used by `PolicyEngine.from_dict` / `to_dict`


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Compare(_Doc):
    op: Literal["eq", "ne", "gt", "ge", "lt", "le"]
    fact: str = Field(min_length=1)
    value: Any


class _Member(_Doc):
    op: Literal["in"]
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
    priority: int = 50


class _Policy(_Doc):
    rules: list[_Rule]


for _model in (_All, _Any, _Not, _Rule, _Policy):
    _model.model_rebuild()


def _condition(doc: Any) -> Condition:
    if isinstance(doc, _Compare | _Contains):
        return Compare(doc.fact, doc.op, doc.value)
    if isinstance(doc, _Member):
        return Compare(doc.fact, "in", tuple(doc.values))
    if isinstance(doc, _All):
        return AllOf(tuple(_condition(c) for c in doc.conditions))
    if isinstance(doc, _Any):
        return AnyOf(tuple(_condition(c) for c in doc.conditions))
    if isinstance(doc, _Not):
        return Not(_condition(doc.condition))
    return Always()


def rules_from_dict(data: Mapping[str, Any]) -> list[Rule]:
    """The rules of a `{"rules": [...]}` document; `DocumentError` names each bad path."""
    doc = validate_document(_Policy, data, "policy document")
    rules = []
    for rule in doc.rules:
        then = [Action(a.action, getattr(a, ACTION_FIELDS[a.action])) for a in rule.then]
        rules.append(Rule(rule.name, _condition(rule.when), then, rule.priority))
    return rules


def _condition_dict(cond: Condition) -> dict[str, Any]:
    if isinstance(cond, Compare):
        if cond.op == "in":
            return {"op": "in", "fact": cond.fact, "values": list(cond.value)}
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
