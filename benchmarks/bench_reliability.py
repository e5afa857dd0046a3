"""Reliability layers: Retry's success path vs `tenacity.retry`, CircuitBreaker vs pybreaker
(per call, and 8 threads through one breaker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import tenacity

from agentmw import Call
from agentmw.middleware import CircuitBreaker, Retry

from ._timing import per_call_us, table

TARGET_RETRY_RATIO = 10.0
THREADS = 8
CALLS_PER_THREAD = 25
IO_SECONDS = 0.002

try:
    import pybreaker
except ImportError:  # optional: `pip install -e '.[bench]'`
    pybreaker = None


def _bare() -> int:
    return 1


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _retry_rows() -> list[list[Any]]:
    stop, wait = tenacity.stop_after_attempt(3), tenacity.wait_random_exponential(0.5, max=30)
    with_tenacity = tenacity.retry(stop=stop, wait=wait, reraise=True)(_bare)
    layer = Retry(3, base=0.5, cap=30.0)
    call = Call("turn", "bare", _bare)

    def run_call(c: Call) -> Any:
        return c.fn()

    base = per_call_us(_bare)
    ours_layer = per_call_us(lambda: layer.handle(call, run_call)) - base
    ours_call = per_call_us(lambda: layer.call(_bare)) - base
    theirs = per_call_us(with_tenacity, number=5_000) - base
    return [
        [
            "Retry layer (`handle`, as in a stack)",
            f"{ours_layer:.3f}",
            f"{theirs:.3f}",
            f"{theirs / ours_layer:.0f}x",
            _mark(theirs / ours_layer >= TARGET_RETRY_RATIO),
        ],
        [
            "Retry standalone (`Retry.call`)",
            f"{ours_call:.3f}",
            f"{theirs:.3f}",
            f"{theirs / ours_call:.0f}x",
            _mark(theirs / ours_call >= TARGET_RETRY_RATIO),
        ],
    ]


def _threaded_seconds(call: Callable[[Callable[[], Any]], Any], work: Callable[[], Any]) -> float:
    barrier = threading.Barrier(THREADS + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(CALLS_PER_THREAD):
            call(work)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def _io() -> None:
    time.sleep(IO_SECONDS)


def _breaker_rows() -> tuple[list[list[Any]], str]:
    ours = CircuitBreaker("bench")
    base = per_call_us(_bare)
    ours_us = per_call_us(lambda: ours.call(_bare)) - base
    total = THREADS * CALLS_PER_THREAD
    ours_s = _threaded_seconds(ours.call, _io)
    if pybreaker is None:
        rows = [
            ["`call` overhead (µs)", f"{ours_us:.3f}", "skipped", "", ""],
            [
                f"{THREADS} threads x {IO_SECONDS * 1000:g} ms calls (calls/s)",
                f"{total / ours_s:.0f}",
                "skipped",
                "",
                "",
            ],
        ]
        return rows, "pybreaker is not installed (`pip install -e '.[bench]'`): rows skipped."
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    theirs_us = per_call_us(lambda: theirs.call(_bare)) - base
    theirs_s = _threaded_seconds(theirs.call, _io)
    rows = [
        [
            "`call` overhead (µs)",
            f"{ours_us:.3f}",
            f"{theirs_us:.3f}",
            f"{theirs_us / ours_us:.1f}x",
            _mark(ours_us < theirs_us),
        ],
        [
            f"{THREADS} threads x {IO_SECONDS * 1000:g} ms calls (calls/s)",
            f"{total / ours_s:.0f}",
            f"{total / theirs_s:.0f}",
            f"{theirs_s / ours_s:.1f}x",
            _mark(ours_s < theirs_s),
        ],
    ]
    return rows, (
        f"pybreaker {getattr(pybreaker, '__version__', '')} holds its lock across the call, so "
        "concurrent calls through one breaker run one at a time; ours locks only the state."
    )


def run() -> str:
    retry_rows = _retry_rows()
    breaker_rows, note = _breaker_rows()
    return "\n".join(
        [
            "## Reliability layers",
            "",
            "Success-path overhead beyond a bare call (µs per call), same stop (3 attempts) and "
            f"a full-jitter exponential wait. Target: at least {TARGET_RETRY_RATIO:g}x cheaper "
            "than `tenacity.retry`.",
            "",
            table(["path", "agentmw (µs)", "tenacity.retry (µs)", "ratio", "target"], retry_rows),
            "",
            "CircuitBreaker (closed) vs `pybreaker.CircuitBreaker`. Target: faster.",
            "",
            table(["measure", "agentmw", "pybreaker", "speed-up", "target"], breaker_rows),
            "",
            note,
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
