"""agentmw: a production runtime for multi-step LLM agent loops, as ordered middleware."""

from ._agent import Agent, AgentRegistry, default_registry
from ._backoff import backoff_delay
from ._breaker import BreakerState
from ._call import Call, CallKind
from ._classify import Failure, FailureScenario, classify_exception, parse_retry_after
from ._decorators import agent_tool, agent_turn
from ._documents import DocumentError
from ._errors import (
    AgentMWError,
    BudgetExceededError,
    CircuitOpenError,
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
from ._governance_errors import (
    ApprovalRequiredError,
    GuardrailViolation,
    HandoffRequested,
    OutputValidationError,
    PermissionDeniedError,
    PolicyViolationError,
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
from .guardrails import (
    AllowAll,
    DenyPatterns,
    Guardrail,
    MaxLength,
    OutputSchema,
    PIIRedactor,
    PromptInjectionGuard,
    TextGuardrail,
    Verdict,
)
from .middleware.checkpoint import ReplayDivergedError
from .middleware.limits import LimitExceededError, MaxIterationsExceededError
from .otel_sink import OpenTelemetryEventSink
from .permissions import PermissionDecision, PermissionMode, PermissionPolicy, RolePermissions
from .policy import Action, PolicyEngine, Rule
from .quality import GateOutcome, QualityGate, QualityLevel
from .stores._checkpoint_records import CheckpointCorruptError

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Agent",
    "AgentMWError",
    "AgentRegistry",
    "AgentState",
    "AllowAll",
    "ApprovalRequiredError",
    "BreakerState",
    "BudgetExceededError",
    "Call",
    "CallKind",
    "CheckpointCorruptError",
    "CircuitOpenError",
    "ControlFlowError",
    "DenyPatterns",
    "DocumentError",
    "Event",
    "EventSink",
    "Failure",
    "FailureScenario",
    "FanoutEventSink",
    "GateOutcome",
    "Guardrail",
    "GuardrailViolation",
    "Handoff",
    "HandoffRequested",
    "InvalidTransitionError",
    "LimitExceededError",
    "LoggingEventSink",
    "MaxIterationsExceededError",
    "MaxLength",
    "Middleware",
    "ModelPricing",
    "ModelTotals",
    "OpenTelemetryEventSink",
    "OutputSchema",
    "OutputValidationError",
    "PIIRedactor",
    "PermissionDecision",
    "PermissionDeniedError",
    "PermissionMode",
    "PermissionPolicy",
    "PolicyEngine",
    "PolicyViolationError",
    "PricingTable",
    "PromptInjectionGuard",
    "QualityGate",
    "QualityLevel",
    "RateLimitedError",
    "ReplayDivergedError",
    "RingBufferEventSink",
    "RingBufferUsageSink",
    "RolePermissions",
    "Rule",
    "Session",
    "SessionClosedError",
    "SessionStateError",
    "Stack",
    "TextGuardrail",
    "TurnTimeoutError",
    "Usage",
    "UsageRecord",
    "UsageSink",
    "UsageTracker",
    "Verdict",
    "__version__",
    "add_listener",
    "agent_tool",
    "agent_turn",
    "backoff_delay",
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
