"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from agentmw.core.middleware import Middleware
from agentmw.errors import (
    ApprovalPendingError,
    ApprovalRejectedError,
    InFlightStepError,
    LimitExceededError,
    MaxIterationsExceededError,
    ReplayDivergedError,
)
from agentmw.middleware.budget import Budget
from agentmw.middleware.checkpoint import Checkpoint
from agentmw.middleware.circuit_breaker import CircuitBreaker
from agentmw.middleware.concurrency import Concurrency
from agentmw.middleware.fallback import Fallback
from agentmw.middleware.guardrails import Guardrails
from agentmw.middleware.limits import Limits
from agentmw.middleware.permissions import Permissions
from agentmw.middleware.policy import Policy
from agentmw.middleware.rate_limit import RateLimit, Reservation
from agentmw.middleware.retry import Retry, backoff_delay
from agentmw.middleware.telemetry import OpenTelemetryEventSink, Telemetry
from agentmw.middleware.timeout import Timeout
from agentmw.stores.circuit import BreakerState

__all__ = [
    "ApprovalPendingError",
    "ApprovalRejectedError",
    "BreakerState",
    "Budget",
    "Checkpoint",
    "CircuitBreaker",
    "Concurrency",
    "Fallback",
    "Guardrails",
    "InFlightStepError",
    "LimitExceededError",
    "Limits",
    "MaxIterationsExceededError",
    "Middleware",
    "OpenTelemetryEventSink",
    "Permissions",
    "Policy",
    "RateLimit",
    "ReplayDivergedError",
    "Reservation",
    "Retry",
    "Telemetry",
    "Timeout",
    "backoff_delay",
]
