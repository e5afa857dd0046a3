"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .telemetry import Telemetry
from .timeout import Timeout

__all__ = ["Middleware", "Telemetry", "Timeout"]
