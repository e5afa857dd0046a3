"""A pydantic-ai agent under an agentmw stack, offline (pydantic-ai's own `FunctionModel`).

Run: `python examples/pydantic_ai_agent.py` (needs `pip install 'agentmw[pydantic-ai]'`).
The `AgentMW` capability makes each model request a turn (usage, cost, budget) and each tool
execution a tool call (permissions, guardrails on arguments and results).
"""

from __future__ import annotations

import asyncio

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from agentmw import Agent, BudgetExceededError, Stack, register_pricing
from agentmw.guardrails import PIIRedactor
from agentmw.integrations.pydantic_ai import AgentMW
from agentmw.middleware import Budget, Guardrails, Permissions
from agentmw.permissions import PermissionPolicy, RolePermissions

MODEL = "example-model"
register_pricing(MODEL, {"input_per_million": 3, "output_per_million": 15})


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that calls `search`, then `delete_all`, then answers with what it read."""
    last = messages[-1]
    returns = [p for p in last.parts if isinstance(p, ToolReturnPart)]
    usage = RequestUsage(input_tokens=1_200, output_tokens=80, cache_read_tokens=800)
    if not returns and isinstance(last, ModelRequest) and len(messages) == 1:
        call = ToolCallPart("search", {"query": "release owner"}, tool_call_id="call_search")
        return ModelResponse(parts=[call], usage=usage)
    if returns and returns[0].tool_name == "search":
        call = ToolCallPart("delete_all", {}, tool_call_id="call_delete")
        return ModelResponse(parts=[call], usage=usage)
    parts = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts]
    seen = " | ".join(str(p.content) for p in parts if isinstance(p, ToolReturnPart))
    return ModelResponse(parts=[TextPart(f"I read: {seen}")], usage=usage)


pa_agent = PydanticAgent(FunctionModel(scripted, model_name=MODEL))


@pa_agent.tool_plain
def search(query: str) -> str:
    """Search the wiki."""
    return f"{query}: Dana (dana@example.com)"


@pa_agent.tool_plain
def delete_all() -> str:
    """Delete every page."""
    raise AssertionError("never runs: Permissions refuses it")


policy = PermissionPolicy({"assistant": RolePermissions(allow=["*"], deny=["delete_*"])})
assistant = Agent(
    "assistant",
    stack=Stack([Permissions(policy), Guardrails([PIIRedactor()]), Budget("0.02", enforce=True)]),
)
mw = AgentMW(assistant)


async def main() -> None:
    result = await pa_agent.run("Who owns the release?", capabilities=[mw])
    print("answer:", result.output)
    session = assistant.registry.finished()[-1]
    summary = session.summary()
    print(f"turns {summary['turns']}, tool calls {summary['tool_calls']}, cost {summary['cost']}")
    print("cache read tokens:", summary["usage"]["cache_read_tokens"])
    blocked = [e.tool for e in session.events if e.name == "tool.blocked"]
    print("tool blocked:", blocked)

    # Runs inside an open session share it: one ledger, so the $0.02 budget spans the runs.
    runs = 0
    try:
        async with assistant.session() as shared:
            while runs < 3:
                runs += 1
                await pa_agent.run("Who owns the release?", capabilities=[mw])
    except BudgetExceededError as exc:
        print(f"run {runs} stopped: {exc} after {shared.iterations} turns")


if __name__ == "__main__":
    asyncio.run(main())
