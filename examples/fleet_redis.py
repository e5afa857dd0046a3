"""Fleet-wide limits on Redis: a rate limit, a circuit breaker and a budget every replica shares.

Run it twice at once and both processes draw from the same buckets. Needs Redis at
127.0.0.1:6379 (db 15); exits 0 with a note when Redis is not reachable.
"""

from __future__ import annotations

import socket
import sys
import uuid

URL = "redis://127.0.0.1:6379/15"


def main() -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        print("skipped: Redis not reachable at 127.0.0.1:6379")
        return

    from agentmw import Agent, BudgetExceededError, ModelPricing
    from agentmw.middleware import Budget, CircuitBreaker, RateLimit
    from agentmw.pricing import PricingTable
    from agentmw.stores import RedisBreakerStore, RedisLedger, RedisRateLimitStore
    from agentmw.testing import ScriptedModel

    prefix = f"example-{uuid.uuid4().hex[:8]}"  # one fleet namespace (normally your app's name)
    budget = Budget("0.00002", enforce=True, precheck=False, ledger=RedisLedger(URL, prefix=prefix))
    prices = PricingTable({"small": ModelPricing(input_per_million="1", output_per_million="4")})
    agent = Agent(
        "fleet",
        pricing=prices,
        stack=[
            budget,
            CircuitBreaker("llm", store=RedisBreakerStore(URL, prefix=prefix)),
            RateLimit(rpm=600, tpm=100_000, store=RedisRateLimitStore(URL, prefix=prefix)),
        ],
    )
    model = ScriptedModel(["hello from the fleet"], repeat_last=True, model="small")
    with agent.session() as session:
        for turn in range(5):
            try:
                reply = session.run_turn(model, "hi", model="small")
            except BudgetExceededError:
                print(f"turn {turn}: refused, the fleet's budget is spent")
                break
            print(f"turn {turn}: {reply[0].text!r}")
    # Any replica reads the same total from Redis.
    print("spent by the whole fleet:", RedisLedger(URL, prefix=prefix).spent(budget.name))

    import redis

    client = redis.Redis.from_url(URL)
    found = list(client.scan_iter(match=f"{{{prefix}:*"))
    if found:
        client.delete(*found)


if __name__ == "__main__":
    main()
    sys.exit(0)
