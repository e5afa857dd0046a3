"""Budget, Limits and RateLimit around a scripted model (offline, a fraction of a second)."""

from __future__ import annotations

from agentmw import Agent, BudgetExceededError, ModelPricing, Usage
from agentmw.middleware import Budget, Limits, RateLimit
from agentmw.pricing import PricingTable, format_cost
from agentmw.testing import FakeClock, Reply, ScriptedModel

prices = PricingTable(
    {"small-model": ModelPricing(input_per_million="0.15", output_per_million="0.60")}
)
clock = FakeClock()  # waits advance this clock instead of sleeping
agent = Agent(
    "researcher",
    pricing=prices,
    stack=[
        Budget("0.004", enforce=True, precheck=False),
        Limits(max_turns=20, max_total_tokens=50_000),
        RateLimit(rpm=3, tpm=20_000, clock=clock),
    ],
)
model = ScriptedModel([Reply("notes", Usage(input_tokens=4_000, output_tokens=600))] * 20)

with agent.session() as session:
    try:
        for turn in range(1, 21):
            session.run_turn(model, "summarise the next page", model="small-model", max_tokens=800)
            print(f"turn {turn}: spent {format_cost(session.cost_usd)}, clock at {clock():.0f}s")
    except BudgetExceededError as exc:
        print(f"stopped: budget {format_cost(exc.budget_usd)} spent ({format_cost(exc.spent_usd)})")
    summary = session.summary()

print(
    f"{summary['turns']} turns, {summary['usage']['input_tokens']} input tokens, {summary['cost']}"
)
print(f"waited {sum(clock.sleeps):.0f}s for the 3 requests/minute limit")
