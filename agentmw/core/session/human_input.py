"""`HumanInput`: a session waiting for a person (state WAITING_FOR_INPUT)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from agentmw.core.session.lifecycle import AgentState, check_transition
from agentmw.errors import SessionStateError

if TYPE_CHECKING:
    import asyncio

    from agentmw.core.session.event_log import EventLog
    from agentmw.core.session.lifecycle import Lifecycle

__all__: list[str] = []  # `Session` is the public face of this module


class HumanInput:
    """Human in the loop for one session: `wait_for_input` / `provide_input`.

    Args:
        session_id: the session's id (carried by `SessionStateError`).
        lifecycle: the session's lifecycle (RUNNING <-> WAITING_FOR_INPUT).
        log: where `agent.waiting_for_input` / `agent.input_received` go.

    Attributes:
        pending_prompt: the prompt being waited on, or None.
    """

    __slots__ = ("_lifecycle", "_log", "_loop", "_session_id", "_waiter", "pending_prompt")

    # One lock for every session's waiter (held for an assignment, never across an await):
    # a lock per session cost more memory than the waiting it guards is used.
    _lock = threading.Lock()

    def __init__(self, session_id: str, lifecycle: Lifecycle, log: EventLog) -> None:
        self._session_id = session_id
        self._lifecycle = lifecycle
        self._log = log
        self._waiter: asyncio.Future[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pending_prompt: str | None = None

    async def wait_for_input(self, prompt: str) -> Any:
        """Wait (state WAITING_FOR_INPUT) until `provide_input(value)`; returns the value."""
        import asyncio  # loaded already: this is a coroutine

        loop = asyncio.get_running_loop()
        lifecycle = self._lifecycle
        with self._lock:
            state = lifecycle.state
            if self._waiter is not None:
                raise SessionStateError(self._session_id, state, "already waiting for input")
        check_transition(state, AgentState.WAITING_FOR_INPUT)
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiter, self._loop = future, loop
        lifecycle.transition(AgentState.WAITING_FOR_INPUT)
        self.pending_prompt = prompt
        self._log.emit("agent.waiting_for_input")
        try:
            value = await future
        finally:
            with self._lock:
                self._waiter = self._loop = None
            self.pending_prompt = None
        lifecycle.transition(AgentState.RUNNING)
        self._log.emit("agent.input_received")
        return value

    def provide_input(self, value: Any) -> None:
        """Answer a pending `wait_for_input` (callable from any thread).

        Raises:
            SessionStateError: the session is not waiting for input.
        """
        with self._lock:
            future, loop = self._waiter, self._loop
        if future is None or loop is None:
            raise SessionStateError(
                self._session_id, self._lifecycle.state, "the session is not waiting for input"
            )

        def _set() -> None:
            if not future.done():
                future.set_result(value)

        loop.call_soon_threadsafe(_set)
