"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from .ledger import InMemoryLedger, Ledger, LedgerResult
from .limiter import InMemoryLimiterStore, LimiterStore

__all__ = ["InMemoryLedger", "InMemoryLimiterStore", "Ledger", "LedgerResult", "LimiterStore"]
