"""Every `examples/*.py` runs offline in a subprocess and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))

# Output each example must print (examples not listed only need to exit 0 and print something).
EXPECTED = {
    "pydantic_ai_agent.py": [
        "answer: I read: release owner: Dana ([REDACTED:email])",
        "agentmw refused the call: role 'assistant' may not call tool 'delete_all'",
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
    assert proc.stdout.strip()
    for expected in EXPECTED.get(path.name, []):
        assert expected in proc.stdout, f"{path.name} did not print {expected!r}"
