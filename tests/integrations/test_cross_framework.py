"""One budget and one policy across frameworks (issue 17, item 5).

A LangChain agent, a pydantic-ai agent and an OpenAI Agents SDK agent run in one process, each
under its own agentmw `Agent`, and all three stacks share one `Budget` ledger and one
`PolicyEngine`. Every turn costs exactly $0.01 and reserves exactly that (`max_call_usd`), so
the combined spend stops at the $0.05 budget on the fifth turn, whichever framework makes it,
and the policy's tool rule refuses the same tool in all three.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from agents import Agent as SDKAgent
from agents import RunConfig, Runner, function_tool
from agents.models.interface import Model, ModelProvider
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage as SDKUsage
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from agentmw import Agent, Event, ModelPricing, Stack
from agentmw.core.agent import AgentRegistry
from agentmw.errors import BudgetExceededError
from agentmw.integrations.langchain import AgentMWMiddleware
from agentmw.integrations.openai_agents import AgentMWModelProvider, wrap_tools
from agentmw.integrations.pydantic_ai import AgentMW
from agentmw.middleware import Budget, Policy
from agentmw.policy import PolicyEngine, Rule, deny, fact
from agentmw.pricing import PricingTable
from agentmw.stores import InMemoryLedger

from .lc_models import ScriptedChatModel, reply

MODEL = "shared-model"
# 1,000 input tokens at $10 per million: every turn of every framework costs exactly $0.01.
PRICES = PricingTable({MODEL: ModelPricing(input_per_million=10, output_per_million=0)})
TURN_USD = Decimal("0.01")
RAN: list[tuple[str, str]] = []


def engine() -> PolicyEngine:
    return PolicyEngine(
        [Rule("no-deleting", fact("tool") == "delete_records", deny("deleting is off"))]
    )


class Shared:
    """One ledger and one policy engine behind three agentmw agents, one per framework."""

    def __init__(self) -> None:
        self.ledger = InMemoryLedger()
        self.policy = engine()
        self.agents = {name: self.agent(name) for name in ("langchain", "pydantic-ai", "agents")}
        self.events: list[Event] = []  # every event of the three agents, in order

    def agent(self, name: str) -> Agent:
        budget = Budget("0.05", enforce=True, max_call_usd=TURN_USD, ledger=self.ledger)
        stack = Stack([Policy(self.policy), budget])
        return Agent(name, stack=stack, pricing=PRICES, registry=AgentRegistry(), event_sink=self)

    def emit(self, event: Event) -> None:
        """The three agents' event sink: keeps every event in order."""
        self.events.append(event)

    def spent(self) -> Decimal:
        return self.ledger.spent("Budget")

    def denied(self, name: str) -> list[str]:
        """The tools the policy refused in the sessions of the agent `name` (its role)."""
        return [e.tool or "" for e in self.events if e.name == "policy.denied" and e.role == name]


# -- LangChain ------------------------------------------------------------------------------
@tool
def lc_lookup(key: str) -> str:
    """Look a key up."""
    RAN.append(("langchain", f"lookup {key}"))
    return key.upper()


@tool("delete_records")
def lc_delete(table: str) -> str:
    """Delete every record of a table."""
    RAN.append(("langchain", f"delete {table}"))
    return "deleted"


def langchain_graph(shared: Shared) -> tuple[ScriptedChatModel, Any]:
    calls = [("delete_records", {"table": "users"}), ("lc_lookup", {"key": "a"})]
    model = ScriptedChatModel(
        replies=[
            reply("", tools=calls, input_tokens=1000, output_tokens=10),
            reply("done", input_tokens=1000, output_tokens=10),
        ],
        model_name=MODEL,
    )
    middleware = AgentMWMiddleware(shared.agents["langchain"])
    return model, create_agent(model, tools=[lc_lookup, lc_delete], middleware=[middleware])


LC_INPUT = {"messages": [{"role": "user", "content": "clean up"}]}


# -- pydantic-ai ----------------------------------------------------------------------------
def pydantic_ai_agent(shared: Shared) -> tuple[list[Any], PydanticAgent[None, str]]:
    seen: list[Any] = []

    def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        usage = RequestUsage(input_tokens=1000, output_tokens=10)
        last = messages[-1]
        results = [p for p in last.parts if isinstance(p, (ToolReturnPart, RetryPromptPart))]
        if not results:
            calls = [
                ToolCallPart("delete_records", {"table": "users"}, tool_call_id="pa_1"),
                ToolCallPart("lookup", {"key": "b"}, tool_call_id="pa_2"),
            ]
            return ModelResponse(parts=calls, usage=usage)
        assert isinstance(last, ModelRequest)
        seen.extend(results)
        return ModelResponse(parts=[TextPart("done")], usage=usage)

    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(scripted, model_name=MODEL),
        capabilities=[AgentMW(shared.agents["pydantic-ai"])],
    )

    @pa.tool_plain
    def lookup(key: str) -> str:
        """Look a key up."""
        RAN.append(("pydantic-ai", f"lookup {key}"))
        return key.upper()

    @pa.tool_plain
    def delete_records(table: str) -> str:
        """Delete every record of a table."""
        RAN.append(("pydantic-ai", f"delete {table}"))
        return "deleted"

    return seen, pa


# -- OpenAI Agents SDK ----------------------------------------------------------------------
def sdk_usage() -> SDKUsage:
    return SDKUsage(
        requests=1,
        input_tokens=1000,
        output_tokens=10,
        total_tokens=1010,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


class Provider(ModelProvider):
    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        return self.model


@function_tool
def oa_lookup(key: str) -> str:
    """Look a key up."""
    RAN.append(("agents", f"lookup {key}"))
    return key.upper()


@function_tool(name_override="delete_records")
def oa_delete(table: str) -> str:
    """Delete every record of a table."""
    RAN.append(("agents", f"delete {table}"))
    return "deleted"


def sdk_agent() -> tuple[ScriptedModel, SDKAgent[Any], RunConfig]:
    scripted = ScriptedModel(
        [
            ModelStep(
                output=[
                    function_call("delete_records", {"table": "users"}, call_id="oa_1"),
                    function_call("oa_lookup", {"key": "c"}, call_id="oa_2"),
                ],
                usage=sdk_usage(),
            ),
            ModelStep(output=[assistant_message("done")], usage=sdk_usage()),
        ]
    )
    agent = SDKAgent(name="cleaner", model=MODEL, tools=wrap_tools([oa_lookup, oa_delete]))
    config = RunConfig(
        model_provider=AgentMWModelProvider(Provider(scripted)), tracing_disabled=True
    )
    return scripted, agent, config


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def check_outcome(shared: Shared, lc_model: ScriptedChatModel, pa_seen: list[Any]) -> None:
    # Five turns ran (LangChain 2, pydantic-ai 2, the Agents SDK 1) and filled the budget
    # exactly; the sixth was refused before it reached a model.
    assert shared.spent() == Decimal("0.05")
    assert shared.ledger.reserved("Budget") == 0
    # The one policy refused delete_records in all three frameworks, and only that tool ran.
    assert sorted(RAN) == [
        ("agents", "lookup c"),
        ("langchain", "lookup a"),
        ("pydantic-ai", "lookup b"),
    ]
    for name in ("langchain", "pydantic-ai", "agents"):
        assert shared.denied(name) == ["delete_records"]
    # Each framework's model read the same refusal as a tool result.
    text = (
        "agentmw refused this tool call: PolicyViolationError: policy rule 'no-deleting' "
        "(deny): deleting is off"
    )
    refusals = [m for m in lc_model.requests[1] if isinstance(m, ToolMessage)]
    assert [m.content for m in refusals if m.status == "error"] == [text]
    assert [p.content for p in pa_seen if p.tool_name == "delete_records"] == [text]


def test_one_budget_and_one_policy_across_three_frameworks() -> None:
    shared = Shared()
    lc_model, graph = langchain_graph(shared)
    graph.invoke(LC_INPUT)
    assert shared.spent() == 2 * TURN_USD
    pa_seen, pa = pydantic_ai_agent(shared)
    assert pa.run_sync("clean up").output == "done"
    assert shared.spent() == 4 * TURN_USD

    scripted, agent, config = sdk_agent()
    session = shared.agents["agents"].session()
    with pytest.raises(BudgetExceededError) as stopped, session:
        Runner.run_sync(agent, "clean up", run_config=config)
    assert len(scripted.calls) == 1  # the second turn never reached the model
    assert stopped.value.budget_usd == Decimal("0.05")
    assert stopped.value.spent_usd == Decimal("0.05")
    assert [e.tool for e in session.events if e.name == "policy.denied"] == ["delete_records"]
    check_outcome(shared, lc_model, pa_seen)

    # Spent is spent for every framework: the next LangChain run stops at its first turn.
    lc_again, graph_again = langchain_graph(shared)
    with pytest.raises(BudgetExceededError):
        graph_again.invoke(LC_INPUT)
    assert lc_again.requests == []
    assert shared.spent() == Decimal("0.05")


def test_one_budget_and_one_policy_across_three_frameworks_async() -> None:
    shared = Shared()
    lc_model, graph = langchain_graph(shared)
    pa_seen, pa = pydantic_ai_agent(shared)
    scripted, agent, config = sdk_agent()

    async def main() -> Any:
        await graph.ainvoke(LC_INPUT)
        assert (await pa.run("clean up")).output == "done"
        async with shared.agents["agents"].session() as session:
            await Runner.run(agent, "clean up", run_config=config)
        return session

    with pytest.raises(BudgetExceededError):
        asyncio.run(main())
    assert len(scripted.calls) == 1
    check_outcome(shared, lc_model, pa_seen)
    lc_again, graph_again = langchain_graph(shared)
    with pytest.raises(BudgetExceededError):
        asyncio.run(graph_again.ainvoke(LC_INPUT))
    assert lc_again.requests == []
