"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from ._jsonl_sink import JsonlEventSink
from ._postgres_sinks import PostgresEventSink, PostgresUsageSink
from ._sink import BatchedSink, SinkSchemaError, UsageTotals
from ._sqlite_sinks import SqliteEventSink, SqliteUsageSink
from .ledger import InMemoryLedger, Ledger, LedgerResult
from .limiter import InMemoryLimiterStore, LimiterStore

__all__: list[str] = [
    "BatchedSink",
    "InMemoryLedger",
    "InMemoryLimiterStore",
    "JsonlEventSink",
    "Ledger",
    "LedgerResult",
    "LimiterStore",
    "PostgresEventSink",
    "PostgresUsageSink",
    "SinkSchemaError",
    "SqliteEventSink",
    "SqliteUsageSink",
    "UsageTotals",
]
