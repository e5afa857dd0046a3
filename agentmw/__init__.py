"""agentmw: a production runtime for multi-step LLM agent loops, as ordered middleware."""

from ._agent import Agent, AgentRegistry, default_registry
from ._backoff import backoff_delay
from ._breaker import BreakerState
from ._call import Call, CallKind
from ._classify import Failure, FailureScenario, classify_exception, parse_retry_after
from ._decorators import agent_tool, agent_turn
from ._errors import (
    AgentMWError,
    CircuitOpenError,
    ControlFlowError,
    InvalidTransitionError,
    SessionClosedError,
    SessionStateError,
    TurnTimeoutError,
)
from ._events import (
    Event,
    EventSink,
    FanoutEventSink,
    LoggingEventSink,
    RingBufferEventSink,
    RingBufferUsageSink,
    UsageRecord,
    UsageSink,
    add_listener,
    remove_listener,
)
from ._handoff import Handoff
from ._ledger import ModelTotals, UsageTracker
from ._lifecycle import AgentState
from ._middleware import Middleware
from ._session import Session, current_session
from ._stack import Stack, get_default_stack, set_default_stack
from ._usage import Usage, extract_usage

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentMWError",
    "AgentRegistry",
    "AgentState",
    "BreakerState",
    "Call",
    "CallKind",
    "CircuitOpenError",
    "ControlFlowError",
    "Event",
    "EventSink",
    "Failure",
    "FailureScenario",
    "FanoutEventSink",
    "Handoff",
    "InvalidTransitionError",
    "LoggingEventSink",
    "Middleware",
    "ModelTotals",
    "RingBufferEventSink",
    "RingBufferUsageSink",
    "Session",
    "SessionClosedError",
    "SessionStateError",
    "Stack",
    "TurnTimeoutError",
    "Usage",
    "UsageRecord",
    "UsageSink",
    "UsageTracker",
    "__version__",
    "add_listener",
    "agent_tool",
    "agent_turn",
    "backoff_delay",
    "classify_exception",
    "current_session",
    "default_registry",
    "extract_usage",
    "get_default_stack",
    "parse_retry_after",
    "remove_listener",
    "set_default_stack",
]
