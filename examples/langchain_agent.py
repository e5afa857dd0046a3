"""A LangChain v1 agent (`create_agent`) whose model and tool calls run through agentmw.

Offline: a scripted chat model stands in for a provider. Shows one session per run, usage and
cost from `usage_metadata`, a refused tool the model reads, a redacted tool result, a replay
of the thread by Checkpoint, and a budget ending a run. Needs `pip install 'agentmw[langchain]'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from agentmw import Agent, ModelPricing, Stack
from agentmw.errors import BudgetExceededError
from agentmw.guardrails import PIIRedactor
from agentmw.integrations.langchain import AgentMWMiddleware
from agentmw.middleware import Budget, Checkpoint, Guardrails, Permissions
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.pricing import PricingTable
from agentmw.stores import InMemorySaver


class ScriptedModel(GenericFakeChatModel):
    """langchain_core's fake chat model, with tools bound and a model name to price."""

    model_name: str = "demo-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def said(
    text: str, tools: Sequence[tuple[str, dict[str, Any]]] = (), tokens: int = 1200
) -> AIMessage:
    calls = [{"name": n, "args": a, "id": f"call_{i}"} for i, (n, a) in enumerate(tools, 1)]
    usage = {
        "input_tokens": tokens,
        "output_tokens": 80,
        "total_tokens": tokens + 80,
        "input_token_details": {"cache_read": 400},
        "output_token_details": {"reasoning": 20},
    }
    return AIMessage(content=text, tool_calls=calls, usage_metadata=usage)


@tool
def customer(name: str) -> str:
    """The customer's record."""
    return f"{name}, premium plan, contact {name.lower()}@example.com"


@tool
def shell(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("never runs: the researcher may not call shell")


def script() -> list[AIMessage]:
    return [
        said("", [("customer", {"name": "Ada"}), ("shell", {"command": "cat /etc/passwd"})]),
        said("Ada is on the premium plan."),
    ]


prices = PricingTable({"demo-model": ModelPricing(input_per_million=3, output_per_million=15,
                                                  cache_read_per_million=0.3)})  # fmt: skip
policy = PermissionPolicy({"researcher": RolePermissions(deny=["shell"])})
saver = InMemorySaver()
stack = Stack([Checkpoint(saver), Permissions(policy), Guardrails([PIIRedactor()], kinds="tool")])
researcher = Agent("researcher", stack=stack, pricing=prices)


def build(replies: list[AIMessage], agent: Agent = researcher) -> Any:
    model = ScriptedModel(messages=iter(replies))
    return create_agent(model, tools=[customer, shell], middleware=[AgentMWMiddleware(agent)])


config = {"configurable": {"thread_id": "ticket-42"}}
question = {"messages": [{"role": "user", "content": "Which plan is Ada on?"}]}

out = build(script()).invoke(question, config)
session = researcher.registry.finished()[-1]
print(f"session {session.state.value} thread={session.thread_id}")
print(
    f"turns={session.iterations} tool_calls={session.tool_calls} cost={session.summary()['cost']}"
)
print(f"usage {session.usage.as_dict()}")
for message in out["messages"]:
    if isinstance(message, ToolMessage):
        print(f"tool {message.name} [{message.status}]: {message.content}")
print("answer:", out["messages"][-1].content)

# The same thread again: every completed step replays from the checkpoint; no model or tool
# runs. Step 3 (the refused shell call) was recorded as failed, so Permissions refuses it anew.
replayed = build([]).invoke(question, config)
again = researcher.registry.finished()[-1]
steps = [e.data["checkpoint_step"] for e in again.events if e.name == "checkpoint.replayed"]
print(f"replayed steps {steps}; answer: {replayed['messages'][-1].content}")

# A budget of $0.003: the first turn spends it, the second is refused and ends the run.
frugal = Agent("researcher", stack=Stack([Budget("0.003", enforce=True)]), pricing=prices)
try:
    build([said("", [("customer", {"name": "Ada"})]), said("never")], frugal).invoke(question)
except BudgetExceededError as exc:
    print(f"run ended: {type(exc).__name__}: {exc}")
print("frugal session:", frugal.registry.finished()[-1].state.value)
