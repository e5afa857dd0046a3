"""`make bench`: runs every `benchmarks/bench_*.py` and writes `benchmarks/RESULTS.md`.

Each module exposes `run() -> str`, returning one Markdown section (a heading and a table).
"""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    only = set(argv)
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    sections = [
        "# agentmw benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()}. Targets are reported, "
        "never asserted in tests. Reproduce with `make bench`.",
        "",
    ]
    for name in names:
        if only and name not in only:
            continue
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", flush=True)
        sections.append(module.run().rstrip() + "\n")
        print(f"  done in {time.perf_counter() - started:.1f}s", flush=True)
    text = "\n".join(sections)
    (HERE / "RESULTS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
