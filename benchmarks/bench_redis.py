"""Redis stores: limiter reservations per second against a plain INCRBY round trip, same run.

Each Redis operation is one round trip (EVALSHA of a small Lua script), so the ratio to INCRBY
shows the script's own cost; breaker and ledger operations are timed the same way.
"""

from __future__ import annotations

import os
import socket
import statistics
import uuid
from decimal import Decimal

from ._timing import per_call_us, table

URL = os.environ.get("AGENTMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
N = 3_000


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def run() -> str:
    """One Markdown section (a note instead when Redis is not reachable)."""
    head = "## Redis stores (fleet-wide state)\n\n"
    if not _reachable():
        return head + "Skipped: Redis is not reachable at 127.0.0.1:6379.\n"
    import redis

    from agentmw.stores import RedisBreakerStore, RedisLedger, RedisRateLimitStore
    from agentmw.stores.circuit import BreakerConfig
    from agentmw.stores.gcra import Rate

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(URL)
    limiter = RedisRateLimitStore(client, prefix=prefix)
    breaker = RedisBreakerStore(client, prefix=prefix)
    ledger = RedisLedger(client, prefix=prefix)
    rates = [(Rate("rpm", 1e9, 1e9), 1.0), (Rate("tpm", 1e12, 1e12), 500.0)]
    config = BreakerConfig()
    permit = breaker.acquire("b", "k", config, 0.0)
    cent = Decimal("0.01")
    counter = f"{{{prefix}:incr}}"
    try:
        # Interleaved rounds: on a shared machine the load drifts, so each reservation round is
        # compared with the INCRBY round next to it and the median ratio is reported.
        pairs = [
            (
                per_call_us(lambda: client.incrby(counter, 1), number=N // 3, repeat=1),
                per_call_us(lambda: limiter.acquire("k", rates, 0.0), number=N // 3, repeat=1),
            )
            for _ in range(9)
        ]
        incr = statistics.median(p[0] for p in pairs)
        reserve = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        acquire = per_call_us(lambda: breaker.acquire("b", "k", config, 0.0), number=N, repeat=5)
        record = per_call_us(
            lambda: breaker.record("b", "k", config, 0.0, permit, "success"), number=N, repeat=5
        )
        add = per_call_us(lambda: ledger.add("team", cent), number=N, repeat=5)
        check_add = per_call_us(
            lambda: ledger.add("cap", cent, limit=Decimal(10**9)), number=N, repeat=5
        )
    finally:
        found = list(client.scan_iter(match=f"{{{prefix}:*"))
        if found:
            client.delete(*found)
    rows = [
        ["plain INCRBY round trip", f"{incr:.1f}", f"{1e6 / incr:,.0f}", "1.00"],
        [
            "limiter reserve (rpm + tpm)",
            f"{reserve:.1f}",
            f"{1e6 / reserve:,.0f}",
            f"{ratio:.2f}",
        ],
        ["breaker acquire", f"{acquire:.1f}", f"{1e6 / acquire:,.0f}", f"{acquire / incr:.2f}"],
        ["breaker record", f"{record:.1f}", f"{1e6 / record:,.0f}", f"{record / incr:.2f}"],
        ["ledger add", f"{add:.1f}", f"{1e6 / add:,.0f}", f"{add / incr:.2f}"],
        [
            "ledger check-and-add",
            f"{check_add:.1f}",
            f"{1e6 / check_add:,.0f}",
            f"{check_add / incr:.2f}",
        ],
    ]
    verdict = "meets" if ratio <= 1.5 else "misses"
    return (
        head
        + table(["operation", "µs/op", "ops/s", "vs INCRBY"], rows)
        + f"\n\nLimiter reservation / INCRBY = {ratio:.2f} ({verdict} the ≤ 1.5 target), "
        "median of interleaved rounds; "
        "one client, sequential calls, local Redis.\n"
    )
