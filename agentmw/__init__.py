"""agentmw: a production runtime for multi-step LLM agent loops, as ordered middleware.

The root holds what every program needs; the rest lives in domain modules: `agentmw.errors`,
`agentmw.events`, `agentmw.pricing`, `agentmw.usage`, `agentmw.classify`, `agentmw.core`,
`agentmw.middleware`, `agentmw.stores`, `agentmw.guardrails`, `agentmw.policy`,
`agentmw.permissions`, `agentmw.quality`, `agentmw.integrations` and `agentmw.testing`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from agentmw.core import (
    Agent,
    AgentState,
    Call,
    Middleware,
    Session,
    Stack,
    agent_tool,
    agent_turn,
    current_call,
    current_session,
)
from agentmw.core.config import configure
from agentmw.core.stack import set_preset_loader as _set_preset_loader
from agentmw.errors import (
    AgentMWError,
    ApprovalRequiredError,
    BudgetExceededError,
    CircuitOpenError,
    ControlFlowError,
    GuardrailViolation,
    HandoffRequested,
    LimitExceededError,
    MaxIterationsExceededError,
    PermissionDeniedError,
    PolicyViolationError,
    RateLimitedError,
    ReplayDivergedError,
    SessionClosedError,
    TurnTimeoutError,
)
from agentmw.events import Event
from agentmw.pricing import ModelPricing, register_pricing
from agentmw.usage import Usage

__all__ = [
    "Agent",
    "AgentMWError",
    "AgentState",
    "ApprovalRequiredError",
    "BudgetExceededError",
    "Call",
    "CircuitOpenError",
    "ControlFlowError",
    "Event",
    "GuardrailViolation",
    "Handoff",
    "HandoffRequested",
    "LimitExceededError",
    "MaxIterationsExceededError",
    "Middleware",
    "ModelPricing",
    "PermissionDeniedError",
    "PolicyViolationError",
    "RateLimitedError",
    "ReplayDivergedError",
    "Session",
    "SessionClosedError",
    "Stack",
    "TurnTimeoutError",
    "Usage",
    "__version__",
    "agent_tool",
    "agent_turn",
    "configure",
    "current_call",
    "current_session",
    "register_pricing",
]

if TYPE_CHECKING:
    from agentmw.core.handoff import Handoff

    __version__: str


def _load_presets() -> None:
    # Stack.default and run_turn(timeout=) build layers: the presets (and with them every
    # layer, OpenTelemetry and tenacity) load on their first use, not at `import agentmw`.
    from agentmw import presets  # noqa: F401  (registers its builders on import)


_set_preset_loader(_load_presets)

# Names that left the root in 0.2: they still import from here for one release, with a
# DeprecationWarning naming their new home.
_MOVED: dict[str, str] = {
    **dict.fromkeys(("Action", "PolicyEngine", "Rule"), "agentmw.policy"),
    **dict.fromkeys(
        (
            "AgentRegistry",
            "CallKind",
            "ModelTotals",
            "UsageTracker",
            "default_registry",
            "get_default_stack",
            "set_default_stack",
        ),
        "agentmw.core",
    ),
    **dict.fromkeys(
        (
            "AllowAll",
            "DenyPatterns",
            "Guardrail",
            "MaxLength",
            "OutputSchema",
            "PIIRedactor",
            "PromptInjectionGuard",
            "TextGuardrail",
            "Verdict",
        ),
        "agentmw.guardrails",
    ),
    **dict.fromkeys(
        ("BreakerState", "OpenTelemetryEventSink", "backoff_delay"), "agentmw.middleware"
    ),
    **dict.fromkeys(
        (
            "CheckpointCorruptError",
            "DocumentError",
            "InvalidTransitionError",
            "OutputValidationError",
            "SessionStateError",
        ),
        "agentmw.errors",
    ),
    **dict.fromkeys(
        (
            "EventSink",
            "FanoutEventSink",
            "LoggingEventSink",
            "RingBufferEventSink",
            "RingBufferUsageSink",
            "UsageRecord",
            "UsageSink",
            "add_listener",
            "remove_listener",
        ),
        "agentmw.events",
    ),
    **dict.fromkeys(
        ("Failure", "FailureScenario", "classify_exception", "parse_retry_after"),
        "agentmw.classify",
    ),
    **dict.fromkeys(("GateOutcome", "QualityGate", "QualityLevel"), "agentmw.quality"),
    **dict.fromkeys(
        ("PermissionDecision", "PermissionMode", "PermissionPolicy", "RolePermissions"),
        "agentmw.permissions",
    ),
    **dict.fromkeys(
        (
            "PricingTable",
            "call_cost",
            "default_pricing",
            "format_cost",
            "has_pricing",
            "load_pricing_from_file",
            "pricing_for",
        ),
        "agentmw.pricing",
    ),
    **dict.fromkeys(("estimate_usage", "extract_usage", "usage_from_payload"), "agentmw.usage"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the package metadata on first use
        from agentmw._version import version

        return version()
    if name == "Handoff":  # a pydantic model, loaded on first use
        from agentmw.core.handoff import Handoff

        return Handoff
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'agentmw' has no attribute {name!r}")
    warnings.warn(
        f"agentmw.{name} has moved: import it from {module} (the old path goes away in the "
        "next release)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
