"""Every Python snippet in `docs/` runs (each in a fresh interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
SNIPPETS = [
    pytest.param(block, id=f"{path.relative_to(DOCS)}#{i}")
    for path in sorted(DOCS.rglob("*.md"))
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))
]


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # Every stack it builds is in a sound order, and no call escapes an open session.
    for loud in ("StackOrderWarning", "OutsideSessionWarning"):
        assert loud not in proc.stderr, proc.stderr
