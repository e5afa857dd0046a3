"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from .breaker import BreakerStore, InMemoryBreakerStore

__all__ = ["BreakerStore", "InMemoryBreakerStore"]
