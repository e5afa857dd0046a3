"""The core: `Call`, `Middleware`, `Stack`, the decorators, `Agent` and `Session`.

A leaf of the package: nothing here imports a layer, a store, an integration or the presets
(checked by import-linter in `make lint`).
"""

from typing import TYPE_CHECKING, Any

from agentmw.core.agent import Agent, AgentRegistry, default_registry
from agentmw.core.call import Call, CallKind
from agentmw.core.config import configure
from agentmw.core.context import current_call, current_session
from agentmw.core.decorators import agent_tool, agent_turn
from agentmw.core.middleware import Middleware
from agentmw.core.session import AgentState, ModelTotals, Session, UsageTracker
from agentmw.core.stack import Stack, get_default_stack, set_default_stack

__all__ = [
    "Agent",
    "AgentRegistry",
    "AgentState",
    "Call",
    "CallKind",
    "Handoff",
    "Middleware",
    "ModelTotals",
    "Session",
    "Stack",
    "UsageTracker",
    "agent_tool",
    "agent_turn",
    "configure",
    "current_call",
    "current_session",
    "default_registry",
    "get_default_stack",
    "set_default_stack",
]

if TYPE_CHECKING:
    from agentmw.core.handoff import Handoff


def __getattr__(name: str) -> Any:
    # `Handoff` is a pydantic model: imported on first use, so `import agentmw` stays light.
    if name == "Handoff":
        from agentmw.core.handoff import Handoff

        return Handoff
    raise AttributeError(f"module 'agentmw.core' has no attribute {name!r}")
