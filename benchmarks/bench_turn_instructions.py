"""Machine instructions per turn, counted by valgrind: agentmw's `Stack.default()` against
techrevati-runtime's `run_turn` / `arun_turn`, both at turn 10 of fresh sessions.

Timings on a shared 2-core machine swing by a third; instruction counts do not. Each figure is
the difference between two runs of the same script under `valgrind --tool=callgrind` (20
sessions of 10 turns against 20 sessions of 5 turns, so start-up, imports and the session
opens cancel out), divided by the extra turns: the mean cost of turns 6 to 10. The cyclic
garbage collector is off in both runtimes' scripts: its collections fall on different turns in
the two runs of a pair and made a figure swing by a tenth.

Set `AGENTMW_BASELINE=/path/to/another/checkout` to add that tree's agentmw as a column (the
issue 19 "before" figures below were taken so, from commit 09c68ae).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

from ._timing import table

SESSIONS = 20
LONG, SHORT = 10, 5
TARGET_RATIO = 25.0  # agentmw at least 25x cheaper per turn than techrevati-runtime
# Issue 19's starting point (commit 09c68ae), measured with this module and AGENTMW_BASELINE.
BEFORE = {"sync": 100_845, "async": 106_182}

OURS = textwrap.dedent(
    """
    import asyncio, gc, sys
    gc.disable()  # see the module docstring
    from agentmw import Agent, ModelPricing, Stack, Usage, agent_turn, register_pricing
    USAGE = Usage(input_tokens=100, output_tokens=20)
    register_pricing("bench-model", ModelPricing(input_per_million=1, output_per_million=2))

    @agent_turn(model="bench-model")
    def turn() -> Usage:
        return USAGE

    @agent_turn(model="bench-model")
    async def aturn() -> Usage:
        return USAGE

    mode, sessions, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    agent = Agent("b", stack=Stack.default(budget_usd=1_000_000, max_iterations=10_000_000))
    if mode == "sync":
        for _ in range(sessions):
            with agent.session():
                for _ in range(turns):
                    turn()
    else:
        async def main():
            for _ in range(sessions):
                async with agent.session():
                    for _ in range(turns):
                        await aturn()
        asyncio.run(main())
    """
)

PEER = textwrap.dedent(
    """
    import asyncio, gc, sys
    gc.disable()  # see the module docstring
    from techrevati.runtime import AgentSession, UsageSnapshot
    from techrevati.runtime.circuit_breaker import AsyncCircuitBreaker, CircuitBreaker
    USAGE = UsageSnapshot(input_tokens=100, output_tokens=20)

    def fn():
        return "ok"

    async def afn():
        return "ok"

    mode, sessions, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    peer = AgentSession(
        role="bench", phase="bench", budget_usd=1_000_000.0, max_iterations=1_000_000,
        circuit_breaker=CircuitBreaker("llm"), async_circuit_breaker=AsyncCircuitBreaker("llm"),
    )
    if mode == "sync":
        for _ in range(sessions):
            with peer.session() as s:
                for _ in range(turns):
                    s.run_turn(fn, model="bench-model", usage=USAGE)
    else:
        async def main():
            for _ in range(sessions):
                async with peer.asession() as s:
                    for _ in range(turns):
                        await s.arun_turn(afn, model="bench-model", usage=USAGE)
        asyncio.run(main())
    """
)


def count(script: str, args: list[str], env: dict[str, str]) -> int:
    """Instructions valgrind's callgrind counts for `python script *args`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        result = subprocess.run(
            [*command, script, *args],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found is not None, result.stderr[-2000:]
    return int(found.group(1))


def per_turn(body: str, mode: str, tree: str | None = None) -> float:
    """Mean instructions of turns SHORT+1 .. LONG over SESSIONS fresh sessions."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if tree is not None:
        env["PYTHONPATH"] = tree
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(body)
    try:
        short = count(handle.name, [mode, str(SESSIONS), str(SHORT)], env)
        long = count(handle.name, [mode, str(SESSIONS), str(LONG)], env)
    finally:
        os.unlink(handle.name)
    return (long - short) / (SESSIONS * (LONG - SHORT))


def run() -> str:
    """One Markdown section."""
    heading = "## Instructions per turn (`bench_turn_instructions`)"
    if shutil.which("valgrind") is None:
        return f"{heading}\n\nvalgrind is not installed: not measured.\n"
    try:
        import techrevati.runtime  # noqa: F401
    except ImportError:
        peer_ok = False
    else:
        peer_ok = True
    baseline = os.environ.get("AGENTMW_BASELINE")
    rows = []
    for mode in ("sync", "async"):
        ours = per_turn(OURS, mode)
        before = per_turn(OURS, mode, baseline) if baseline else float(BEFORE[mode])
        peer = per_turn(PEER, mode) if peer_ok else None
        ratio = f"1/{peer / ours:.0f}" if peer is not None else "n/a"
        met = "met" if peer is not None and peer / ours >= TARGET_RATIO else "MISSED"
        rows.append(
            [
                mode,
                f"{before:,.0f}",
                f"{ours:,.0f}",
                f"{ours / before:.2f}",
                "n/a" if peer is None else f"{peer:,.0f}",
                f"{ratio} ({met})" if peer is not None else ratio,
            ]
        )
    source = (
        "the AGENTMW_BASELINE tree"
        if baseline
        else "commit 09c68ae (recorded with AGENTMW_BASELINE)"
    )
    return "\n".join(
        [
            heading,
            "",
            "Machine instructions per turn at turn 10 of fresh sessions (valgrind callgrind, "
            f"{SESSIONS} sessions of {LONG} turns minus {SESSIONS} of {SHORT}): agentmw "
            "`@agent_turn` through `Stack.default(budget_usd=..., max_iterations=...)`; "
            "techrevati-runtime `run_turn` / `arun_turn` with its circuit breaker. "
            f"Deterministic, unlike the µs tables. Before: {source}. Target: at least "
            f"{TARGET_RATIO:.0f}x fewer than techrevati-runtime.",
            "",
            table(
                [
                    "path",
                    "agentmw before",
                    "agentmw now",
                    "now / before",
                    "techrevati-runtime",
                    "vs techrevati-runtime",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    print(run())
