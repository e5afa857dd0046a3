"""UsageTracker: exact totals under concurrency, summary with formatted cost."""

from __future__ import annotations

import threading
from decimal import Decimal

from agentmw import Usage
from agentmw.core import UsageTracker


def test_sixteen_threads_ten_thousand_records_each_exact() -> None:
    tracker = UsageTracker()
    cost = Decimal("0.000123")
    usage = Usage(input_tokens=3, output_tokens=2, cache_read_tokens=1)
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(10_000):
            tracker.record(f"m{i % 2}", usage, cost)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.calls == 160_000
    assert tracker.cost_usd == cost * 160_000 == Decimal("19.68")
    assert tracker.usage == Usage(480_000, 320_000, 160_000)
    models = tracker.per_model()
    assert models["m0"].calls == models["m1"].calls == 80_000
    assert models["m0"].cost_usd == Decimal("9.84")
    summary = tracker.summary()
    assert summary["cost"] == "$19.68"
    assert summary["models"]["m1"]["cost_usd"] == Decimal("9.84")
