"""The running context: the current session and call of a thread or task, and the open-session
count.

Context variables propagate into asyncio tasks and `asyncio.to_thread`; a plain worker thread
starts without them. `Session.bind`, `Session.executor` and `Session.agather` carry the session
into other threads and tasks; a decorated call that runs with no current session while some
session is open is an escape, reported as `agentmw.configure(outside_session=...)` says.
"""

from __future__ import annotations

import threading
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal

from agentmw.errors import NoSessionError, OutsideSessionWarning

if TYPE_CHECKING:
    from agentmw.core.call import Call
    from agentmw.core.session import Session

__all__ = ["current_call", "current_session"]

CURRENT_SESSION: ContextVar[Session | None] = ContextVar("agentmw_session", default=None)
"""The variable behind `current_session()` (internal): a `Session` sets it while it runs."""

OutsideSession = Literal["warn", "error", "allow"]

OPEN_SESSIONS = [0]
"""How many sessions are open (entered and not yet left) in the process (internal).

A one-item list read without a lock on the decorators' path (a stale read at worst delays one
warning); written under `_open_lock`.
"""
_open_lock = threading.Lock()
_outside: list[OutsideSession] = ["warn"]


def current_session() -> Session | None:
    """The session of the running context (propagates into tasks and library worker threads)."""
    return CURRENT_SESSION.get()


def session_opened() -> None:
    """Count one more open session (internal: `Session` calls it when entered)."""
    with _open_lock:
        OPEN_SESSIONS[0] += 1


def session_closed() -> None:
    """Count one open session fewer (internal: `Session` calls it when left)."""
    with _open_lock:
        OPEN_SESSIONS[0] = max(0, OPEN_SESSIONS[0] - 1)


def set_outside_session(mode: OutsideSession) -> None:
    """Set what an outside-session call does (internal: `agentmw.configure` validates it)."""
    _outside[0] = mode


def get_outside_session() -> OutsideSession:
    """What a decorated call with no session does while a session is open."""
    return _outside[0]


def outside_session(function: str, warned: list[bool]) -> None:
    """A decorated call runs with no current session while a session is open (internal).

    `warned` is the decorated function's own flag, so the warning comes once per function.

    Raises:
        NoSessionError: under `outside_session="error"`.
    """
    mode = _outside[0]
    if mode == "allow":
        return
    if mode == "error":
        raise NoSessionError(function)
    if not warned[0]:
        warned[0] = True
        warnings.warn(OutsideSessionWarning(function), stacklevel=4)


CURRENT_CALL: ContextVar[Call | None] = ContextVar("agentmw_call", default=None)
"""The variable behind `current_call()` (internal): the chain's terminal sets it while the
user's function runs."""


def current_call() -> Call | None:
    """The `Call` whose function is running (None outside a decorated function's body).

    A tool reads `current_call().idempotency_key` to hand it to an external API, or
    `current_call().attempt` to know a retry.
    """
    return CURRENT_CALL.get()
