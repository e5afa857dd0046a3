"""MCP: every `call_tool` of an MCP client through the stack as a tool call.

`instrument(client_session)` puts a `call_tool` on an `mcp.ClientSession` (or an `mcp.Client`)
that runs each call as a tool named by the MCP tool's name: Permissions match on it,
Guardrails check the arguments and the result's text, Limits count it, Checkpoint records
and replays it, Telemetry opens an `execute_tool` span. The calls run in the current agentmw
session (else on the stack without a session ledger, as `instrument(client)` does). Needs
`pip install 'agentmw[mcp]'`.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

try:
    from mcp import types as mcp_types
    from mcp.client.client import Client
    from mcp.client.session import ClientSession
except ImportError as exc:  # pragma: no cover - the packaging test blocks the import instead
    raise ImportError(
        "agentmw.integrations.mcp needs the MCP SDK: pip install 'agentmw[mcp]'"
    ) from exc

from agentmw._validate import check_choice
from agentmw.core.stack import Stack
from agentmw.errors import ToolResultError
from agentmw.integrations._toolcalls import (
    ON_REFUSAL,
    REFUSALS,
    arun,
    is_refusal,
    refusal_text,
    start,
)
from agentmw.integrations._wrap import check_stack

__all__ = ["instrument"]

C = TypeVar("C")
_ORIGINAL = "__agentmw_original__"
_ANY_RESULT = mcp_types.CallToolResult | mcp_types.InputRequiredResult | mcp_types.Result


def _refused(exc: Exception) -> Any:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=refusal_text(exc))], is_error=True
    )


def instrument(client_session: C, *, stack: Stack | None = None, on_refusal: str = "message") -> C:
    """Run every `call_tool` of an MCP `ClientSession` (or `Client`) through a stack.

    The session is instrumented in place and returned (the same object); instrumenting it again
    replaces the settings (the last call wins), never nests. The call's name is the MCP tool's
    name, its argument the `arguments` dict. A result with `is_error=True` counts as a failed
    tool call (`ToolResultError` inside the chain) and is returned as it is. A call refused by
    Permissions, Guardrails, Limits or Policy returns a `CallToolResult` with `is_error=True`
    whose text names the refusal (`agentmw refused this tool call: ...`), unless
    `on_refusal="raise"`; any other agentmw error (`BudgetExceededError`,
    `CircuitOpenError`...) raises.

    Args:
        client_session: an `mcp.ClientSession`, or an `mcp.Client` (its `call_tool`, which
            spans the input-required rounds of one call).
        stack: a fixed stack; default: the current session's stack, else the process default.
        on_refusal: "message" (a refused call returns an error result) or "raise".

    Raises:
        TypeError: `client_session` is neither a `ClientSession` nor a `Client`, or `stack` is
            neither a `Stack` nor None.
        ValueError: `on_refusal` is neither "message" nor "raise".
    """
    if not isinstance(client_session, (ClientSession, Client)):
        raise TypeError(
            "client_session must be an mcp ClientSession or Client, got "
            f"{type(client_session).__name__}"
        )
    fixed = check_stack(stack)
    raising = check_choice("on_refusal", on_refusal, ON_REFUSAL) == "raise"
    current = client_session.call_tool
    original: Any = getattr(current, _ORIGINAL, current)

    @functools.wraps(original)
    async def call_tool(
        name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        async def run(arguments: dict[str, Any]) -> Any:
            result = await original(name, arguments, *args, **kwargs)
            if isinstance(result, mcp_types.CallToolResult) and result.is_error:
                raise ToolResultError(name, result)
            return result

        # Checkpoint reads a replayed result back as this type.
        extra = kwargs.get("allow_input_required") or kwargs.get("allow_claimed")
        run.__annotations__ = {"return": _ANY_RESULT if extra else mcp_types.CallToolResult}
        call, chain = start("tool", name, run, (dict(arguments or {}),), {}, fixed, "async")
        try:
            return await arun(call, chain)
        except ToolResultError as exc:
            return exc.result
        except REFUSALS as exc:
            if raising or not is_refusal(exc):
                raise
            return _refused(exc)

    setattr(call_tool, _ORIGINAL, original)
    # An instance attribute shadows the class's method (`Client.call_tool` goes through
    # `client.session.call_tool`, so instrumenting the session covers it too).
    setattr(client_session, "call_tool", call_tool)  # noqa: B010
    return client_session
