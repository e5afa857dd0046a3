"""`configure`: process-wide settings in one call."""

from __future__ import annotations

from collections.abc import Iterable

from agentmw._validate import check_choice
from agentmw.core.context import OutsideSession, set_outside_session
from agentmw.core.middleware import Middleware
from agentmw.core.stack import Stack, set_default_stack

__all__ = ["configure"]


def configure(
    *,
    stack: Stack | Iterable[Middleware] | None = None,
    outside_session: OutsideSession | None = None,
) -> None:
    """Set process-wide defaults; arguments left out keep their current value.

    Args:
        stack: the process default stack, used by decorated calls outside any session and by
            agents created without `stack=` (see `set_default_stack`).
        outside_session: what a decorated call does when it runs with no current session while
            at least one session is open in the process (typically a worker thread the session
            did not follow): "warn" (the default: `OutsideSessionWarning`, once per function),
            "error" (raise `NoSessionError`) or "allow" (run it under the default stack, as a
            process with no open session always does).

    Raises:
        TypeError: `stack` holds something other than middleware, or `outside_session` is not
            a string.
        ValueError: `outside_session` is not "warn", "error" or "allow".
    """
    if outside_session is not None:
        mode = check_choice("outside_session", outside_session, ("warn", "error", "allow"))
        set_outside_session(mode)  # type: ignore[arg-type]
    if stack is not None:
        set_default_stack(stack)
