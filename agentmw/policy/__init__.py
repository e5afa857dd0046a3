"""Declarative policy: rules of conditions on facts, and the actions they trigger.

`PolicyEngine.evaluate(facts)` is usable on its own; the `agentmw.middleware.Policy` layer builds
the facts of each call and applies the actions.
"""

from agentmw.policy.conditions import Condition, Fact, all_of, any_of, fact, not_
from agentmw.policy.engine import PolicyEngine
from agentmw.policy.facts import FACTS
from agentmw.policy.rules import (
    Action,
    Rule,
    abort,
    deny,
    emit,
    handoff,
    require_approval,
    switch_model,
    warn,
)

__all__ = [
    "FACTS",
    "Action",
    "Condition",
    "Fact",
    "PolicyEngine",
    "Rule",
    "abort",
    "all_of",
    "any_of",
    "deny",
    "emit",
    "fact",
    "handoff",
    "not_",
    "require_approval",
    "switch_model",
    "warn",
]
