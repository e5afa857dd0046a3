"""Every `examples/*.py` runs offline in a subprocess and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))

# Output each example must print (examples not listed only need to exit 0 and print something).
EXPECTED = {
    "durable_approval.py": [
        "waiting for approval: step 2 (transfer), rule big-transfer",
        "first worker exit code: 3",
        "1 approval(s) pending",
        "thread 'pay-1' step 2: edited; a resume runs the call with the edited arguments",
        "sent 40 to acme",
        "second worker exit code: 0",
        "ran: lookup, transfer 40",
    ],
    "durable_side_effects.py": [
        "worker killed by SIGKILL: True",
        "charges after the crash: 1",
        "1 step(s) in flight",
        "resume refused: step 1 (pay) was in flight",
        "thread 'invoice-7' step 1: completed; a resume replays it",
        "mail to ann@example.com: paid, receipt ch_",
        "charges after the resume: 1",
    ],
    "pydantic_ai_agent.py": [
        "answer: I read: release owner: Dana ([REDACTED:email])",
        "agentmw refused this tool call: PermissionDeniedError: denied by pattern 'delete_*'",
        "turns 3, tool calls 1, cost $0.01",
        "cache read tokens: 2400",
        "tool blocked: ['delete_all']",
        "run 2 stopped: budget of $0.02 is spent ($0.0240 so far) after 5 turns",
    ],
    "tiny_agent.py": [
        "handoff: writer -> editor",
        "fallback.switched",
        "breaker.opened",
        "tool shell denied",
        "blocked by guardrails ['PromptInjectionGuard']",
        "[REDACTED:email]",
        "via small-model (policy",
        "budget $0.04 is spent",
        "steps [1, 2] replayed",
        "invoke_agent writer",
        "cost per model",
        "event timeline",
    ],
    "dbos_recovery.py": [
        "worker exited with -9 (SIGKILL is -9)",
        "recovered run: {'turns': 3, 'tools': 3, 'tokens': 3600, 'cost': '0.0042'}",
        # Completed steps ran once; only tool 2, in flight at the kill, ran again.
        "  turn: q1\n  tool: answer to q1\n  turn: q2\n  tool: answer to q2\n"
        "  tool: answer to q2\n  turn: q3\n  tool: answer to q3\n",
    ],
    "openai_agents_agent.py": [
        "final output: A-17 ships tomorrow.",
        "the model read for call-1: order A-17 ships tomorrow; contact [REDACTED:email]",
        "the model read for call-2: agentmw refused this tool call: PermissionDeniedError",
        "turns 2, tool calls 1, cost $0.24",
        "budget stopped the run: spent $0.0976 of $0.05",
    ],
    "mcp_tools.py": [
        "find_customer: Ada: premium plan, contact [REDACTED:email]",
        "delete_customer (is_error=True): agentmw refused this tool call: PermissionDeniedError",
        "resumed: Ada: premium plan, contact [REDACTED:email] ['checkpoint.replayed']",
        "server calls: ['find_customer']",
    ],
    "langchain_agent.py": [
        "session completed thread=ticket-42",
        "turns=2 tool_calls=1 cost=$0.0074",
        "'cache_read_tokens': 800",
        "contact [REDACTED:email]",
        "tool shell [error]: agentmw refused this tool call: PermissionDeniedError",
        "replayed steps [1, 2, 4]; answer: Ada is on the premium plan.",
        "run ended: BudgetExceededError",
        "frugal session: failed",
    ],
}


def test_there_are_examples() -> None:
    assert any(p.name == "tiny_agent.py" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent.parent,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Every stack it builds is in a sound order, and no call escapes an open session.
    for loud in ("StackOrderWarning", "OutsideSessionWarning"):
        assert loud not in proc.stderr, proc.stderr
    assert proc.stdout.strip()
    for expected in EXPECTED.get(path.name, []):
        assert expected in proc.stdout, f"{path.name} did not print {expected!r}"
