"""`Session`: one run of an agent, composed of its lifecycle, event log and call runner."""

from agentmw.core.session.ledger import ModelTotals, UsageTracker
from agentmw.core.session.lifecycle import AgentState
from agentmw.core.session.session import Session

__all__ = ["AgentState", "ModelTotals", "Session", "UsageTracker"]
