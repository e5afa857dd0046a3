"""State stores: in-memory defaults, SQLite (embedded), Redis and PostgreSQL (fleet)."""

__all__: list[str] = []
