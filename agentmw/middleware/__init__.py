"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .checkpoint import Checkpoint, ReplayDivergedError
from .timeout import Timeout

__all__ = ["Checkpoint", "Middleware", "ReplayDivergedError", "Timeout"]
