"""The running context: the current session (and call) of a thread or task.

Context variables propagate into asyncio tasks and `asyncio.to_thread`; a plain worker thread
starts without them (see `Session.bind` and `Session.executor`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentmw.core.session import Session

__all__ = ["current_session"]

_current: ContextVar[Session | None] = ContextVar("agentmw_session", default=None)


def current_session() -> Session | None:
    """The session of the running context (propagates into tasks and library worker threads)."""
    return _current.get()
