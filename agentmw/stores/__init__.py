"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from ._jsonl_sink import JsonlEventSink
from ._postgres_sinks import PostgresEventSink, PostgresUsageSink
from ._sink import BatchedSink, SinkSchemaError, UsageTotals
from ._sqlite_sinks import SqliteEventSink, SqliteUsageSink

__all__: list[str] = [
    "BatchedSink",
    "JsonlEventSink",
    "PostgresEventSink",
    "PostgresUsageSink",
    "SinkSchemaError",
    "SqliteEventSink",
    "SqliteUsageSink",
    "UsageTotals",
]
