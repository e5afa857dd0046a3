"""The turns an instrumented client runs: one wrapper per call name, and the SDK-retry warning."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentmw.core.context import CURRENT_SESSION as _current
from agentmw.core.decorators import build_wrapper as _build
from agentmw.core.stack import Stack, get_default_stack
from agentmw.integrations._streams import AsyncTurnStream, TurnStream

__all__ = ["AsyncTurnStream", "Settings", "TurnStream", "Turns", "check_stack"]


def check_stack(stack: Any) -> Stack | None:
    """`stack` itself when it is a `Stack` or None.

    Raises:
        TypeError: anything else.
    """
    if stack is not None and not isinstance(stack, Stack):
        raise TypeError(f"stack must be a Stack or None, got {type(stack).__name__}")
    return stack


@dataclass(slots=True)
class Settings:
    """What `instrument(client, ...)` was given; the last `instrument` call wins."""

    provider: str
    stack: Stack | None
    model_from_kwargs: bool


class Turns:
    """The turn wrappers of one client, built once per call name (sync or async flavour).

    `send(exchange, **body)` makes one request and returns the parsed result; `produce(exchange,
    **body)` is a generator function yielding the SDK's chunks. Both run through the stack as
    the turn named by the route.
    """

    __slots__ = ("_built", "_lock", "_produce", "_send", "settings")

    def __init__(
        self, send: Callable[..., Any], produce: Callable[..., Any], settings: Settings
    ) -> None:
        self._send = send
        self._produce = produce
        self.settings = settings
        self._built: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    def reset(self, settings: Settings) -> None:
        """Use new settings from the next call on (a repeated `instrument`)."""
        with self._lock:
            self.settings = settings
            self._built = {}

    def get(self, name: str, stream: bool) -> Any:
        built = self._built.get((name, stream))
        if built is not None:
            return built
        s = self.settings
        fn = self._produce if stream else self._send
        wrapper = _build(
            fn,
            "turn",
            name,
            None,
            s.stack,
            None,
            provider=s.provider,
            model_from_kwargs=s.model_from_kwargs,
            live_stream=stream,  # SDK chunk objects: Checkpoint runs these streams live
        )
        with self._lock:
            return self._built.setdefault((name, stream), wrapper)


class RetryWarning:
    """Warns once per client when the SDK retries under a stack that has a `Retry` layer."""

    __slots__ = ("_client", "_done", "_lock")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._done = False
        self._lock = threading.Lock()

    def check(self, fixed: Stack | None) -> None:
        if self._done:
            return
        retries = getattr(self._client, "max_retries", 0)
        if not isinstance(retries, int) or retries <= 0:
            return
        from agentmw.middleware.retry.layer import Retry

        session = _current.get()
        stack = fixed or (session.stack if session is not None else get_default_stack())
        if not any(isinstance(layer, Retry) for layer in stack):
            return
        with self._lock:
            if self._done:
                return
            self._done = True
        warnings.warn(
            f"{type(self._client).__name__} has max_retries={retries} under a stack with Retry: "
            "every Retry attempt also retries inside the SDK. Create the client with "
            "max_retries=0 and let Retry (which honours Retry-After) decide.",
            RuntimeWarning,
            stacklevel=4,
        )
