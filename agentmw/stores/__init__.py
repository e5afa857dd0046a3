"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from ._sink import BatchedSink, SinkSchemaError, UsageTotals
from ._sqlite_sinks import SqliteEventSink, SqliteUsageSink

__all__: list[str] = [
    "BatchedSink",
    "SinkSchemaError",
    "SqliteEventSink",
    "SqliteUsageSink",
    "UsageTotals",
]
