"""PIIRedactor's default stages: a turn in and out, a tool's output only."""

from __future__ import annotations

from typing import Any

import pytest

from agentmw import Agent, Stack, agent_tool
from agentmw.guardrails import PIIRedactor
from agentmw.middleware import Guardrails
from agentmw.testing import ScriptedModel


async def _call(mode: str, session: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return fn(*args, **kwargs)
    return await fn(*args, **kwargs)


async def test_a_tool_gets_its_arguments_and_its_result_is_redacted(mode: str) -> None:
    seen: list[str] = []

    def send_email(to: str) -> str:
        seen.append(to)
        return f"sent to {to}"

    async def asend_email(to: str) -> str:
        return send_email(to)

    tool = agent_tool(send_email if mode == "sync" else asend_email)
    agent = Agent("mailer", stack=Stack([Guardrails([PIIRedactor()])]))
    with agent.session() as session:
        result = await _call(mode, session, tool, to="ada@example.com")
    assert seen == ["ada@example.com"]  # the tool sent the mail to the real address
    assert result == "sent to [REDACTED:email]"  # what goes back to the model is redacted
    replaced = [e for e in session.events if e.name == "guardrail.replaced"]
    assert [e.data["stage"] for e in replaced] == ["output"]


async def test_a_turn_is_redacted_in_and_out_by_default(mode: str) -> None:
    model = ScriptedModel(["reach me at bob@example.com"])
    agent = Agent("w", stack=Stack([Guardrails([PIIRedactor()])]))
    with agent.session() as session:
        if mode == "sync":
            reply, _ = session.run_turn(model, "I am ada@example.com")
        else:
            reply, _ = await session.arun_turn(model.acall, "I am ada@example.com")
    assert model.calls[0][0] == ("I am [REDACTED:email]",)
    assert reply.text == "reach me at [REDACTED:email]"


@pytest.mark.parametrize("stages", [("input",), ("input", "output")])
async def test_stages_that_ask_for_it_rewrite_tool_arguments(
    mode: str, stages: tuple[str, ...]
) -> None:
    seen: list[str] = []

    def send(to: str) -> str:
        seen.append(to)
        return "ok"

    async def asend(to: str) -> str:
        return send(to)

    agent = Agent("m", stack=Stack([Guardrails([PIIRedactor(stages=stages)])]))
    with agent.session() as session:
        if mode == "sync":
            session.run_tool("send", send, "ada@example.com")
        else:
            await session.arun_tool("send", asend, "ada@example.com")
    assert seen == ["[REDACTED:email]"]


def test_stages_are_validated() -> None:
    with pytest.raises(ValueError, match="stages must be a non-empty subset of input, output"):
        PIIRedactor(stages=("inbound",))
    assert PIIRedactor().stages is None
    assert PIIRedactor(stages="output").stages == frozenset({"output"})
