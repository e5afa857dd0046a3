"""Human in the loop: a `Session` waiting for input (state WAITING_FOR_INPUT)."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from agentmw.core.session.lifecycle import AgentState, check_transition
from agentmw.errors import SessionStateError

if TYPE_CHECKING:
    from agentmw.events import Event

__all__: list[str] = []  # `Session` is the public face of this module


class HumanInput:
    """`wait_for_input` / `provide_input`, a mixin of `Session`."""

    # Provided by `Session`.
    id: str
    pending_prompt: str | None
    _state: AgentState
    _lock: threading.Lock
    _waiter: asyncio.Future[Any] | None
    _waiter_loop: asyncio.AbstractEventLoop | None

    if TYPE_CHECKING:

        def _transition(self, target: AgentState) -> bool: ...

        def emit(self, name: str) -> Event: ...

    # -- human in the loop -------------------------------------------------------------------
    async def wait_for_input(self, prompt: str) -> Any:
        """Wait (state WAITING_FOR_INPUT) until `provide_input(value)`; returns the value."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._waiter is not None:
                raise SessionStateError(self.id, self._state, "already waiting for input")
            check_transitions = self._state
        check_transition(check_transitions, AgentState.WAITING_FOR_INPUT)
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiter, self._waiter_loop = future, loop
        self._transition(AgentState.WAITING_FOR_INPUT)
        self.pending_prompt = prompt
        self.emit("agent.waiting_for_input")
        try:
            value = await future
        finally:
            with self._lock:
                self._waiter = self._waiter_loop = None
            self.pending_prompt = None
        self._transition(AgentState.RUNNING)
        self.emit("agent.input_received")
        return value

    def provide_input(self, value: Any) -> None:
        """Answer a pending `wait_for_input` (callable from any thread).

        Raises:
            SessionStateError: the session is not waiting for input.
        """
        with self._lock:
            future, loop = self._waiter, self._waiter_loop
        if future is None or loop is None:
            raise SessionStateError(self.id, self._state, "the session is not waiting for input")

        def _set() -> None:
            if not future.done():
                future.set_result(value)

        loop.call_soon_threadsafe(_set)
