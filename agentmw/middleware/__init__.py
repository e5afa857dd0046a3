"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .budget import Budget
from .checkpoint import Checkpoint, ReplayDivergedError
from .circuit_breaker import CircuitBreaker
from .fallback import Fallback
from .guardrails import Guardrails
from .limits import LimitExceededError, Limits, MaxIterationsExceededError
from .permissions import Permissions
from .policy import Policy
from .rate_limit import RateLimit
from .reservation import Reservation
from .retry import Retry
from .telemetry import Telemetry
from .timeout import Timeout

__all__ = [
    "Budget",
    "Checkpoint",
    "CircuitBreaker",
    "Fallback",
    "Guardrails",
    "LimitExceededError",
    "Limits",
    "MaxIterationsExceededError",
    "Middleware",
    "Permissions",
    "Policy",
    "RateLimit",
    "ReplayDivergedError",
    "Reservation",
    "Retry",
    "Telemetry",
    "Timeout",
]
