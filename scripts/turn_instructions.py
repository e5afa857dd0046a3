"""Machine instructions per turn of `Stack.default()`, counted by valgrind (deterministic).

Timings on a shared 2-core machine swing by a third; instruction counts do not. The script
runs one session of N and of N + 2000 turns under `valgrind --tool=callgrind` and reports the
difference per turn, so start-up and import costs cancel out. Usage:

    python scripts/turn_instructions.py [SOURCE_TREE]   # SOURCE_TREE: another checkout's root
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_turn_instructions import OURS, count  # after the path: the root

EXTRA = 2000


def main() -> None:
    env = dict(os.environ)
    if len(sys.argv) > 1:
        env["PYTHONPATH"] = sys.argv[1]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(OURS)  # one session (`1`) of N turns
    try:
        for mode in ("sync", "async"):
            small = count(handle.name, [mode, "1", "200"], env)
            large = count(handle.name, [mode, "1", str(200 + EXTRA)], env)
            print(f"{mode}: {(large - small) / EXTRA:,.0f} instructions per turn")
    finally:
        os.unlink(handle.name)


if __name__ == "__main__":
    main()
