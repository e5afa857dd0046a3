"""Fleet-wide state on Redis (extra `[redis]`): rate limits, circuit breakers and budgets.

redis-py is imported only when a store is constructed, so importing this package never needs it.
"""

from .breaker import RedisBreakerStore
from .ledger import RedisLedger
from .limiter import RedisRateLimitStore

__all__ = ["RedisBreakerStore", "RedisLedger", "RedisRateLimitStore"]
