"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .budget import Budget
from .limits import LimitExceededError, Limits, MaxIterationsExceededError
from .rate_limit import RateLimit
from .reservation import Reservation
from .telemetry import Telemetry
from .timeout import Timeout

__all__ = [
    "Budget",
    "LimitExceededError",
    "Limits",
    "MaxIterationsExceededError",
    "Middleware",
    "RateLimit",
    "Reservation",
    "Telemetry",
    "Timeout",
]
