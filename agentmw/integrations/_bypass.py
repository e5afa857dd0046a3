"""No silent bypass: warn once per method when an instrumented client calls a model uncovered."""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

from agentmw.errors import UninstrumentedCallWarning

__all__: list[str] = []  # internal helpers of the SDK integrations

# Set on every wrapper agentmw puts on an SDK object: the SDK's own callable.
ORIGINAL = "__agentmw_original__"


class BypassWarner:
    """Warns `UninstrumentedCallWarning` once per method name; shared by a client's copies."""

    __slots__ = ("_lock", "_seen", "sdk")

    def __init__(self, sdk: str) -> None:
        self.sdk = sdk
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, method: str, stacklevel: int = 3) -> None:
        if method in self._seen:
            return
        with self._lock:
            if method in self._seen:
                return
            self._seen.add(method)
        warnings.warn(UninstrumentedCallWarning(method, self.sdk), stacklevel=stacklevel)


def resource_path(module: str, prefix: str) -> str:
    """The resource path of an SDK module: `openai.resources.chat.completions.completions` ->
    `chat.completions` (a package's module repeating its package name counts once)."""
    parts = module.removeprefix(prefix).split(".")
    out = [p for i, p in enumerate(parts) if p and (i == 0 or p != parts[i - 1])]
    return ".".join(out)


def calling_method(prefix: str) -> str | None:
    """The SDK resource method on the current call stack (`images.generate`), innermost first.

    Only run on an uncovered call: it walks the frames for a `self` whose class lives under
    `prefix` (e.g. "openai.resources.").
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__module__.startswith(prefix):
            return f"{resource_path(type(owner).__module__, prefix)}.{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def warn_on_call(owner: Any, name: str, method: str, warner: BypassWarner) -> None:
    """Put a wrapper on `owner.<name>` that warns (once) before running the SDK's method."""
    current = getattr(owner, name, None)
    if current is None or not callable(current):
        return
    original: Callable[..., Any] = getattr(current, ORIGINAL, current)

    @functools.wraps(original)
    def uncovered(*args: Any, **kwargs: Any) -> Any:
        warner.warn(method)
        return original(*args, **kwargs)

    setattr(uncovered, ORIGINAL, original)
    # An instance attribute shadows the class's method; the client caches its resource objects.
    setattr(owner, name, uncovered)
