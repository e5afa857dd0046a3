"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from agentmw.errors import CheckpointCorruptError, CheckpointSchemaError, SinkSchemaError
from agentmw.stores._approvals import ApprovalRecord, ApprovalSaver
from agentmw.stores._checkpoint_records import CheckpointSaver, SessionSnapshot, StepRecord
from agentmw.stores._jsonl_sink import JsonlEventSink
from agentmw.stores._memory_saver import InMemorySaver
from agentmw.stores._postgres_saver import PostgresSaver
from agentmw.stores._postgres_sinks import PostgresEventSink, PostgresUsageSink
from agentmw.stores._sink import BatchedSink, UsageTotals
from agentmw.stores._sqlite_saver import SqliteSaver
from agentmw.stores._sqlite_sinks import SqliteEventSink, SqliteUsageSink
from agentmw.stores.breaker import BreakerStore, InMemoryBreakerStore
from agentmw.stores.circuit import BreakerConfig, BreakerState, Permit
from agentmw.stores.concurrency import ConcurrencyStore, InMemoryConcurrencyStore
from agentmw.stores.ledger import InMemoryLedger, Ledger, LedgerResult, Reservation
from agentmw.stores.limiter import InMemoryLimiterStore, LimiterStore
from agentmw.stores.redis import (
    RedisBreakerStore,
    RedisConcurrencyStore,
    RedisLedger,
    RedisRateLimitStore,
)

__all__ = [
    "ApprovalRecord",
    "ApprovalSaver",
    "BatchedSink",
    "BreakerConfig",
    "BreakerState",
    "BreakerStore",
    "CheckpointCorruptError",
    "CheckpointSaver",
    "CheckpointSchemaError",
    "ConcurrencyStore",
    "InMemoryBreakerStore",
    "InMemoryConcurrencyStore",
    "InMemoryLedger",
    "InMemoryLimiterStore",
    "InMemorySaver",
    "JsonlEventSink",
    "Ledger",
    "LedgerResult",
    "LimiterStore",
    "Permit",
    "PostgresEventSink",
    "PostgresSaver",
    "PostgresUsageSink",
    "RedisBreakerStore",
    "RedisConcurrencyStore",
    "RedisLedger",
    "RedisRateLimitStore",
    "Reservation",
    "SessionSnapshot",
    "SinkSchemaError",
    "SqliteEventSink",
    "SqliteSaver",
    "SqliteUsageSink",
    "StepRecord",
    "UsageTotals",
]
