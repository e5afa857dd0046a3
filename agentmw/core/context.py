"""The running context: the current session and call of a thread or task.

Context variables propagate into asyncio tasks and `asyncio.to_thread`; a plain worker thread
starts without them (run its work in `contextvars.copy_context().run(...)` to carry them).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentmw.core.call import Call
    from agentmw.core.session import Session

__all__ = ["current_call", "current_session"]

CURRENT_SESSION: ContextVar[Session | None] = ContextVar("agentmw_session", default=None)
"""The variable behind `current_session()` (internal): a `Session` sets it while it runs."""


def current_session() -> Session | None:
    """The session of the running context (propagates into tasks and library worker threads)."""
    return CURRENT_SESSION.get()


CURRENT_CALL: ContextVar[Call | None] = ContextVar("agentmw_call", default=None)
"""The variable behind `current_call()` (internal): the chain's terminal sets it while the
user's function runs."""


def current_call() -> Call | None:
    """The `Call` whose function is running (None outside a decorated function's body).

    A tool reads `current_call().idempotency_key` to hand it to an external API, or
    `current_call().attempt` to know a retry.
    """
    return CURRENT_CALL.get()
