"""`Handoff`: one agent passing the work on to another."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Handoff"]


# `frozen=True` as a class keyword (not in model_config) so type checkers see the fields as
# read-only too; pydantic merges both into one config.
class Handoff(BaseModel, frozen=True):
    """A frozen record of agent-to-agent delegation.

    `context` is deep-copied and must be JSON-serializable, so the receiving side can never mutate
    the sender's data and the handoff can be stored or sent anywhere.
    """

    model_config = ConfigDict(extra="forbid")

    source_role: str
    target_role: str
    reason: str
    context: dict[str, Any] = Field(default_factory=dict)
    project_id: str | int | None = None
    source_session_id: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("source_role", "target_role", "reason")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("context", mode="before")
    @classmethod
    def _json_context(cls, value: Any) -> Any:
        if value is None:
            return {}
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON-serializable ({type(exc).__name__})") from None
        return copy.deepcopy(value)
