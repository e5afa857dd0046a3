"""Loading large documents: a 20,000-rule policy (valid and invalid) and a large price file."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentmw.errors import DocumentError
from agentmw.policy import PolicyEngine
from agentmw.pricing import read_pricing_file

from ._timing import table

RULES = 20_000
TARGET_S = 1.0


def _policy(fact: str) -> dict[str, Any]:
    rule = {"op": ">=", "fact": fact, "value": 1}
    return {
        "rules": [
            {
                "name": f"r{i}",
                "priority": i % 90,
                "when": rule,
                "then": [{"action": "warn", "message": "m"}],
            }
            for i in range(RULES)
        ]
    }


def _seconds(fn: Any, repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def _invalid() -> None:
    try:
        PolicyEngine.from_dict(_policy("cost_usdd"))
    except DocumentError:
        return
    raise AssertionError("the invalid policy loaded")


def run() -> str:
    good = _policy("cost_usd")
    load = _seconds(lambda: PolicyEngine.from_dict(good))
    bad = _seconds(_invalid)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prices.json"
        path.write_text(
            json.dumps(
                {f"m{i}": {"input_per_million": 1, "output_per_million": 2} for i in range(RULES)}
            )
        )
        prices = _seconds(lambda: read_pricing_file(path))
    rows = [
        [f"policy of {RULES:,} rules", f"{load:.3f}", "met" if load < TARGET_S else "missed"],
        [
            f"policy of {RULES:,} bad rules (refused)",
            f"{bad:.3f}",
            "met" if bad < TARGET_S else "missed",
        ],
        [f"price file of {RULES:,} models", f"{prices:.3f}", ""],
    ]
    return "\n".join(
        [
            "## Documents",
            "",
            f"Seconds to load (median of 5); target: a {RULES:,}-rule policy in under "
            f"{TARGET_S:g} s, linear in size.",
            "",
            table(["document", "seconds", "target"], rows),
        ]
    )


if __name__ == "__main__":
    print(run())
