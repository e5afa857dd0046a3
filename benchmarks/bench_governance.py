"""Per-call overhead of the governance layers: Policy + Permissions + Guardrails(PIIRedactor)."""

from __future__ import annotations

from agentmw import Agent, Stack
from agentmw.guardrails import PIIRedactor
from agentmw.middleware import Guardrails, Permissions, Policy
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.policy import PolicyEngine, Rule, deny, fact, warn

from ._timing import aper_call_us, per_call_us, table

ENGINE = PolicyEngine(
    [
        Rule("cap", fact("cost_usd") > 100, deny("over budget")),
        Rule("shell", fact("tool") == "shell", deny("no shell")),
        Rule("long", fact("turns") > 10_000, warn("long run")),
    ]
)
PERMS = PermissionPolicy({"writer": RolePermissions(allow=("search", "fs.*"), deny=("fs.rm",))})
PROMPT = "Summarize the quarterly report for the board; keep it short and factual."
REPLY = "The quarter closed with revenue up 4% and costs flat; contact ir@example.com."


def _reply(prompt: str) -> str:
    return REPLY


async def _areply(prompt: str) -> str:
    return REPLY


def _measure(stack: Stack, number: int) -> tuple[float, float, float]:
    session = Agent("writer", stack=stack).session()
    session.__enter__()
    try:
        turn = per_call_us(lambda: session.run_turn(_reply, PROMPT), number=number)
        tool = per_call_us(lambda: session.run_tool("search", _reply, PROMPT), number=number)
        aturn = aper_call_us(lambda: session.arun_turn(_areply, PROMPT), number=number)
    finally:
        session.__exit__(None, None, None)
    return turn, tool, aturn


def run() -> str:
    number = 5_000
    configs = [
        ("bare session", Stack()),
        ("Policy (3 rules)", Stack([Policy(ENGINE)])),
        ("Permissions", Stack([Permissions(PERMS)])),
        ("Guardrails(PIIRedactor)", Stack([Guardrails([PIIRedactor()])])),
        (
            "all three",
            Stack([Policy(ENGINE), Permissions(PERMS), Guardrails([PIIRedactor()])]),
        ),
    ]
    rows = []
    for label, stack in configs:
        turn, tool, aturn = _measure(stack, number)
        rows.append([label, f"{turn:.1f}", f"{tool:.1f}", f"{aturn:.1f}"])
    return "\n".join(
        [
            "## Governance layers",
            "",
            "Microseconds per call through a session (a ~70-char prompt, a ~80-char reply with one "
            "e-mail address to redact; median of 7 runs).",
            "",
            table(["stack", "sync turn", "sync tool", "async turn"], rows),
        ]
    )


if __name__ == "__main__":
    print(run())
