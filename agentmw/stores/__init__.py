"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

from ._checkpoint_records import (
    CheckpointCorruptError,
    CheckpointSaver,
    SessionSnapshot,
    StepRecord,
)
from ._memory_saver import InMemorySaver
from ._postgres_saver import PostgresSaver
from ._sqlite_saver import CheckpointSchemaError, SqliteSaver

__all__: list[str] = [
    "CheckpointCorruptError",
    "CheckpointSaver",
    "CheckpointSchemaError",
    "InMemorySaver",
    "PostgresSaver",
    "SessionSnapshot",
    "SqliteSaver",
    "StepRecord",
]
