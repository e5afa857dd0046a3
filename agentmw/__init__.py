"""agentmw: a production runtime for multi-step LLM agent loops, as ordered middleware."""

from ._agent import Agent, AgentRegistry, default_registry
from ._call import Call, CallKind
from ._classify import Failure, FailureScenario, classify_exception, parse_retry_after
from ._decorators import agent_tool, agent_turn
from ._errors import (
    AgentMWError,
    BudgetExceededError,
    ControlFlowError,
    InvalidTransitionError,
    RateLimitedError,
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
from ._pricing import (
    ModelPricing,
    PricingTable,
    call_cost,
    default_pricing,
    format_cost,
    has_pricing,
    load_pricing_from_file,
    pricing_for,
    register_pricing,
)
from ._session import Session, current_session
from ._stack import Stack, get_default_stack, set_default_stack
from ._usage import Usage, estimate_usage, extract_usage, usage_from_payload
from .middleware.limits import LimitExceededError, MaxIterationsExceededError
from .otel_sink import OpenTelemetryEventSink

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentMWError",
    "AgentRegistry",
    "AgentState",
    "BudgetExceededError",
    "Call",
    "CallKind",
    "ControlFlowError",
    "Event",
    "EventSink",
    "Failure",
    "FailureScenario",
    "FanoutEventSink",
    "Handoff",
    "InvalidTransitionError",
    "LimitExceededError",
    "LoggingEventSink",
    "MaxIterationsExceededError",
    "Middleware",
    "ModelPricing",
    "ModelTotals",
    "OpenTelemetryEventSink",
    "PricingTable",
    "RateLimitedError",
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
    "call_cost",
    "classify_exception",
    "current_session",
    "default_pricing",
    "default_registry",
    "estimate_usage",
    "extract_usage",
    "format_cost",
    "get_default_stack",
    "has_pricing",
    "load_pricing_from_file",
    "parse_retry_after",
    "pricing_for",
    "register_pricing",
    "remove_listener",
    "set_default_stack",
    "usage_from_payload",
]
