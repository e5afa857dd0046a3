"""`import agentmw` against `import pydantic`: fresh interpreters, interleaved, medians.

Each sample starts a new interpreter; the cost of an import is its process time minus that of
an interpreter that imports nothing (`-c pass`), so the ratio compares the imports alone.

Both sides import from bytecode, as an installed wheel does (pip compiles it on install): the
samples run with a private `PYTHONPYCACHEPREFIX` and without `PYTHONDONTWRITEBYTECODE`, after one
warm-up run per case. An editable checkout under `PYTHONDONTWRITEBYTECODE=1` would otherwise
compile agentmw from source on every sample while pydantic loads its `.pyc` files.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from ._timing import table

SAMPLES = 15
TARGET = 1.5
CASES = {
    "nothing": "pass",
    "import pydantic": "import pydantic",
    "from pydantic import BaseModel": "from pydantic import BaseModel",
    "import agentmw": "import agentmw",
    "import agentmw.middleware": "import agentmw.middleware",
}


def _once(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - started


def measure(samples: int = SAMPLES) -> dict[str, float]:
    """Median milliseconds of each case, net of an empty interpreter's start."""
    with tempfile.TemporaryDirectory(prefix="agentmw-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for code in CASES.values():  # warm-up: writes the bytecode every later sample loads
            _once(code, env)
        return _measure(samples, env)


def _measure(samples: int, env: dict[str, str]) -> dict[str, float]:
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(samples):  # interleaved, so drift on a shared machine hits every case alike
        for name, code in CASES.items():
            runs[name].append(_once(code, env))
    base = statistics.median(runs["nothing"])
    return {name: (statistics.median(r) - base) * 1000 for name, r in runs.items()}


def run() -> str:
    ms = measure()
    ratio = ms["import agentmw"] / ms["import pydantic"]
    rows = [[name, f"{value:.1f}"] for name, value in ms.items() if name != "nothing"]
    verdict = "met" if ratio < TARGET else "missed"
    return "\n".join(
        [
            "## Import cost",
            "",
            f"Milliseconds per import in a fresh interpreter, net of one that imports nothing "
            f"(median of {SAMPLES} interleaved samples, from bytecode as an installed wheel "
            "imports). `import agentmw` loads the core and "
            "its leaves only; layers, OpenTelemetry, tenacity and pydantic load when first "
            "used (`Stack.default()`, `import agentmw.middleware`).",
            "",
            table(["import", "ms"], rows),
            "",
            f"`import agentmw` / `import pydantic` = **{ratio:.2f}** (target < {TARGET}: "
            f"{verdict}).",
        ]
    )


if __name__ == "__main__":
    print(run())
