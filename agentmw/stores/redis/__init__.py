"""Fleet-wide state on Redis (extra `[redis]`): rate limits, concurrency caps, breakers, budgets.

redis-py is imported only when a store is constructed, so importing this package never needs it.
"""

from agentmw.stores.redis.breaker import RedisBreakerStore
from agentmw.stores.redis.concurrency import RedisConcurrencyStore
from agentmw.stores.redis.ledger import RedisLedger
from agentmw.stores.redis.limiter import RedisRateLimitStore

__all__ = ["RedisBreakerStore", "RedisConcurrencyStore", "RedisLedger", "RedisRateLimitStore"]
