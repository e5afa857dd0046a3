"""agentmw: a production runtime for multi-step LLM agent loops, as ordered middleware."""

from ._agent import Agent, AgentRegistry, default_registry
from ._call import Call, CallKind
from ._decorators import agent_tool, agent_turn
from ._documents import DocumentError
from ._errors import (
    AgentMWError,
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
from ._session import Session, current_session
from ._stack import Stack, get_default_stack, set_default_stack
from ._usage import Usage, extract_usage
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
from .permissions import PermissionDecision, PermissionMode, PermissionPolicy, RolePermissions
from .policy import Action, PolicyEngine, Rule
from .quality import GateOutcome, QualityGate, QualityLevel

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Agent",
    "AgentMWError",
    "AgentRegistry",
    "AgentState",
    "AllowAll",
    "ApprovalRequiredError",
    "Call",
    "CallKind",
    "ControlFlowError",
    "DenyPatterns",
    "DocumentError",
    "Event",
    "EventSink",
    "FanoutEventSink",
    "GateOutcome",
    "Guardrail",
    "GuardrailViolation",
    "Handoff",
    "HandoffRequested",
    "InvalidTransitionError",
    "LoggingEventSink",
    "MaxLength",
    "Middleware",
    "ModelTotals",
    "OutputSchema",
    "OutputValidationError",
    "PIIRedactor",
    "PermissionDecision",
    "PermissionDeniedError",
    "PermissionMode",
    "PermissionPolicy",
    "PolicyEngine",
    "PolicyViolationError",
    "PromptInjectionGuard",
    "QualityGate",
    "QualityLevel",
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
    "current_session",
    "default_registry",
    "extract_usage",
    "get_default_stack",
    "remove_listener",
    "set_default_stack",
]
