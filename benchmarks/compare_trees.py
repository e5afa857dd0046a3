"""Run `bench_limiter`'s Redis section for two source trees alternately, each in its own process.

    python -m benchmarks.compare_trees /work/main . [--rounds 5]

Each round runs the section once per tree (the order alternates from round to round), with that
tree first on `sys.path`, so both trees' `agentmw` are timed under the same load on a shared
machine. Prints each run's ratios and the median per tree of the sync and async ratios
(reserve + reconcile vs a bare INCRBY) and of the absolute µs. Not run by `make bench`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_ROW = re.compile(r"^\|\s*(sync|async)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*\*\*([\d.]+)\*\*")
_PROBE = (
    "import agentmw, sys; from benchmarks import bench_limiter; "
    "print(agentmw.__file__, file=sys.stderr); print(bench_limiter._redis())"
)


def _once(tree: Path) -> dict[str, tuple[float, float, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tree, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{tree}: the benchmark failed:\n{done.stderr}")
    if not done.stderr.startswith(str(tree)):
        raise SystemExit(f"{tree}: imported agentmw from {done.stderr.strip()}")
    found: dict[str, tuple[float, float, float]] = {}
    for line in done.stdout.splitlines():
        match = _ROW.match(line)
        if match:
            found[match[1]] = (float(match[2]), float(match[3]), float(match[4]))
    if set(found) != {"sync", "async"}:
        raise SystemExit(f"{tree}: no sync and async rows in:\n{done.stdout}")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    trees = [options.before.resolve(), options.after.resolve()]
    runs: dict[Path, list[dict[str, tuple[float, float, float]]]] = {t: [] for t in trees}
    for index in range(options.rounds):
        for tree in trees if index % 2 == 0 else trees[::-1]:
            found = _once(tree)
            runs[tree].append(found)
            ratios = ", ".join(f"{path} {found[path][2]:.2f}" for path in ("sync", "async"))
            print(f"round {index + 1}: {tree}: {ratios}", flush=True)
    print()
    print("| tree | path | INCRBY (µs) | reserve + reconcile (µs) | ratio (median) |")
    print("|---|---|---:|---:|---:|")
    for tree in trees:
        for path in ("sync", "async"):
            incr, both, ratio = (
                statistics.median(run[path][column] for run in runs[tree]) for column in range(3)
            )
            print(f"| {tree} | {path} | {incr:.1f} | {both:.1f} | **{ratio:.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
