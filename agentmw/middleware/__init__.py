"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .timeout import Timeout

__all__ = ["Middleware", "Timeout"]
