"""Every `examples/*.py` runs offline in a subprocess and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))

# Output each example must print (examples not listed only need to exit 0 and print something).
EXPECTED = {
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
    # Every stack it builds is in a sound order, and no call escapes an open session.
    for loud in ("StackOrderWarning", "OutsideSessionWarning"):
        assert loud not in proc.stderr, proc.stderr
    assert proc.stdout.strip()
    for expected in EXPECTED.get(path.name, []):
        assert expected in proc.stdout, f"{path.name} did not print {expected!r}"
