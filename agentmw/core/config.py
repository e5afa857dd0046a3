"""`configure`: process-wide settings in one call."""

from __future__ import annotations

from collections.abc import Iterable

from agentmw.core.middleware import Middleware
from agentmw.core.stack import Stack, set_default_stack

__all__ = ["configure"]


def configure(*, stack: Stack | Iterable[Middleware] | None = None) -> None:
    """Set process-wide defaults; arguments left out keep their current value.

    Args:
        stack: the process default stack, used by decorated calls outside any session and by
            agents created without `stack=` (see `set_default_stack`).

    Raises:
        TypeError: `stack` holds something other than middleware.
    """
    if stack is not None:
        set_default_stack(stack)
