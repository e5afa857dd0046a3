"""`Permissions`: refuses tool calls a role may not make, before anything sees them."""

from __future__ import annotations

from agentmw._validate import check_instance
from agentmw.core.call import Call
from agentmw.core.middleware import Middleware
from agentmw.errors import PermissionDeniedError
from agentmw.permissions import PermissionPolicy

__all__ = ["Permissions"]


class Permissions(Middleware):
    """Checks each tool call against a `PermissionPolicy` (tools only).

    A refused call raises `PermissionDeniedError` (a control-flow error) and emits `tool.blocked`
    with `kind="permission"`; the tool function is never called. The role is the session agent's
    role (None outside a session, which follows the policy's `unknown_role`).

    Args:
        policy: the policy to enforce.
        name: the layer's name in its stack.
    """

    def __init__(self, policy: PermissionPolicy, *, name: str | None = None) -> None:
        super().__init__(name=name, kinds="tool")
        self.policy = check_instance("policy", policy, PermissionPolicy, "a PermissionPolicy")

    def before(self, call: Call) -> None:
        agent = call.agent
        role = agent.role if agent is not None else None
        decision = self.policy.authorize(role, call.name)
        if not decision.allowed:
            call.emit("tool.blocked", kind="permission", role=role, reason=decision.reason)
            raise PermissionDeniedError(role, call.name, decision.reason)

    def __repr__(self) -> str:
        return f"Permissions(name={self.name!r}, policy={self.policy!r})"
