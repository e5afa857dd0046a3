"""An OpenAI Agents SDK agent whose model calls and tool calls run through one agentmw stack.

The model is the SDK's own scripted test model (`agents.testing.ScriptedModel`), so this runs
offline: it asks for two tools, one of which the agent's role may not call; the refusal
reaches the model as a tool result it can read. Then a second run stops at its budget.
Run it with `python examples/openai_agents_agent.py`.
"""

from __future__ import annotations

from agents import Agent as SDKAgent
from agents import RunConfig, Runner, function_tool
from agents.models.interface import Model, ModelProvider
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage as SDKUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentmw import Agent, ModelPricing, Stack, register_pricing
from agentmw.errors import BudgetExceededError
from agentmw.guardrails import PIIRedactor
from agentmw.integrations.openai_agents import AgentMWModelProvider, wrap_tools
from agentmw.middleware import Budget, Guardrails, Permissions
from agentmw.permissions import PermissionPolicy, RolePermissions

MODEL = "gpt-4.1-mini"
register_pricing(
    MODEL, ModelPricing(input_per_million=400, output_per_million=1600, cache_read_per_million=100)
)


def usage(inp: int, out: int, cached: int = 0) -> SDKUsage:
    return SDKUsage(
        requests=1,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


class ScriptProvider(ModelProvider):
    """Resolves every model name to the scripted model (a real run uses `MultiProvider()`)."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        return self.model


@function_tool
def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id} ships tomorrow; contact jane@example.com"


@function_tool
def refund_order(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


def script() -> ScriptedModel:
    return ScriptedModel(
        [
            ModelStep(
                output=[
                    function_call("lookup_order", {"order_id": "A-17"}, call_id="call-1"),
                    function_call("refund_order", {"order_id": "A-17"}, call_id="call-2"),
                ],
                usage=usage(220, 30, cached=128),
            ),
            ModelStep(output=[assistant_message("A-17 ships tomorrow.")], usage=usage(300, 12)),
        ]
    )


policy = PermissionPolicy({"support": RolePermissions(allow=("*",), deny=("refund_*",))})
support = Agent(
    "support",
    stack=Stack([Permissions(policy), Guardrails([PIIRedactor()]), Budget("1.00", enforce=True)]),
)
scripted = script()
agent = SDKAgent(name="support", model=MODEL, tools=wrap_tools([lookup_order, refund_order]))
config = RunConfig(
    model_provider=AgentMWModelProvider(ScriptProvider(scripted)), tracing_disabled=True
)

with support.session() as session:
    result = Runner.run_sync(agent, "Where is order A-17? Refund it.", run_config=config)
print("final output:", result.final_output)
outputs = [i for i in scripted.calls[1].input if i.get("type") == "function_call_output"]
for item in outputs:
    print(f"the model read for {item['call_id']}: {item['output']}")
summary = session.summary()
print(f"turns {summary['turns']}, tool calls {summary['tool_calls']}, cost {summary['cost']}")
print("usage:", summary["usage"])

# A second run of the same script under a budget the first turn already exceeds.
tight = support.with_stack(Stack([Budget("0.05", enforce=True)]))
config = RunConfig(
    model_provider=AgentMWModelProvider(ScriptProvider(script())), tracing_disabled=True
)
try:
    with tight.session():
        Runner.run_sync(agent, "Where is order A-17?", run_config=config)
except BudgetExceededError as exc:
    print(f"budget stopped the run: spent ${exc.spent_usd} of ${exc.budget_usd}")
