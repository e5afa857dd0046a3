"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from .._breaker import BreakerConfig, Permit
from .breaker import BreakerStore, InMemoryBreakerStore

__all__ = ["BreakerConfig", "BreakerStore", "InMemoryBreakerStore", "Permit"]
