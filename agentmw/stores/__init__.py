"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from .._breaker import BreakerConfig, Permit
from ._checkpoint_records import (
    CheckpointCorruptError,
    CheckpointSaver,
    SessionSnapshot,
    StepRecord,
)
from ._jsonl_sink import JsonlEventSink
from ._memory_saver import InMemorySaver
from ._postgres_saver import PostgresSaver
from ._postgres_sinks import PostgresEventSink, PostgresUsageSink
from ._sink import BatchedSink, SinkSchemaError, UsageTotals
from ._sqlite_saver import CheckpointSchemaError, SqliteSaver
from ._sqlite_sinks import SqliteEventSink, SqliteUsageSink
from .breaker import BreakerStore, InMemoryBreakerStore
from .ledger import InMemoryLedger, Ledger, LedgerResult
from .limiter import InMemoryLimiterStore, LimiterStore
from .redis import RedisBreakerStore, RedisLedger, RedisRateLimitStore

__all__ = [
    "BatchedSink",
    "BreakerConfig",
    "BreakerStore",
    "CheckpointCorruptError",
    "CheckpointSaver",
    "CheckpointSchemaError",
    "InMemoryBreakerStore",
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
    "RedisLedger",
    "RedisRateLimitStore",
    "SessionSnapshot",
    "SinkSchemaError",
    "SqliteEventSink",
    "SqliteSaver",
    "SqliteUsageSink",
    "StepRecord",
    "UsageTotals",
]
