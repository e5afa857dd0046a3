"""Machine instructions per turn of `Stack.default()`, counted by valgrind (deterministic).

Timings on a shared 2-core machine swing by a third; instruction counts do not. The script
runs a session of N and of N + 2000 turns under `valgrind --tool=callgrind` and reports the
difference per turn, so start-up and import costs cancel out. Usage:

    python scripts/turn_instructions.py [SOURCE_TREE]   # SOURCE_TREE: another checkout's root
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap

BODY = textwrap.dedent(
    """
    import asyncio, sys
    from agentmw import Agent, ModelPricing, Stack, Usage, agent_turn, register_pricing
    USAGE = Usage(input_tokens=100, output_tokens=20)
    register_pricing("bench-model", ModelPricing(input_per_million=1, output_per_million=2))

    @agent_turn(model="bench-model")
    def turn() -> Usage:
        return USAGE

    @agent_turn(model="bench-model")
    async def aturn() -> Usage:
        return USAGE

    mode, n = sys.argv[1], int(sys.argv[2])
    agent = Agent("b", stack=Stack.default(budget_usd=1_000_000, max_iterations=10_000_000))
    if mode == "sync":
        with agent.session():
            for _ in range(n):
                turn()
    else:
        async def main():
            async with agent.session():
                for _ in range(n):
                    await aturn()
        asyncio.run(main())
    """
)
EXTRA = 2000


def count(script: str, mode: str, turns: int, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        result = subprocess.run(
            [*command, sys.executable, script, mode, str(turns)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found is not None, result.stderr[-2000:]
    return int(found.group(1))


def main() -> None:
    env = dict(os.environ)
    if len(sys.argv) > 1:
        env["PYTHONPATH"] = sys.argv[1]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(BODY)
    try:
        for mode in ("sync", "async"):
            small = count(handle.name, mode, 200, env)
            large = count(handle.name, mode, 200 + EXTRA, env)
            print(f"{mode}: {(large - small) / EXTRA:,.0f} instructions per turn")
    finally:
        os.unlink(handle.name)


if __name__ == "__main__":
    main()
