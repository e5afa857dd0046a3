"""One classification for a failed tool: its event, Retry, the breaker and policy all agree."""

from __future__ import annotations

from typing import Any

from agentmw import Agent, Stack
from agentmw.classify import Failure
from agentmw.middleware import CircuitBreaker, Policy, Retry
from agentmw.policy import PolicyEngine


def _broken(*_: Any) -> None:
    raise KeyError("no such record")


async def _abroken(*_: Any) -> None:
    raise KeyError("no such record")


async def test_a_failed_tool_is_a_tool_error_everywhere(mode: str) -> None:
    seen: list[str] = []

    def counts(failure: Failure) -> bool:
        seen.append(failure.scenario.value)
        return False

    facts: list[Any] = []
    layer = Policy(PolicyEngine([]))
    stack = Stack([layer, Retry(attempts=3), CircuitBreaker("b", counts=counts)])
    with Agent("w", stack=stack).session() as session:
        for _ in range(2):
            try:
                if mode == "sync":
                    session.run_tool("lookup", _broken)
                else:
                    await session.arun_tool("lookup", _abroken)
            except KeyError:
                pass
        facts.append(layer.facts(_tool_call(session))["last_failure"])
    failed = [e for e in session.events if e.name == "tool.failed"]
    assert [e.failure_class for e in failed] == ["tool_error", "tool_error"]
    assert [e.detail for e in failed] == ["KeyError", "KeyError"]
    assert seen == ["tool_error", "tool_error"]  # one attempt each: tool_error is not retried
    assert not [e for e in session.events if e.name == "retry.scheduled"]
    assert facts == ["tool_error"]


def _tool_call(session: Any) -> Any:
    from agentmw.core.call import new_call

    return new_call("tool", "lookup", _broken, session=session)
