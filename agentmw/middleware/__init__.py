"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .circuit_breaker import CircuitBreaker
from .fallback import Fallback
from .retry import Retry
from .timeout import Timeout

__all__ = ["CircuitBreaker", "Fallback", "Middleware", "Retry", "Timeout"]
