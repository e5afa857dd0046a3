"""The built-in layers. Canonical order (outermost first): see `docs/concepts.md`."""

from .._middleware import Middleware
from .guardrails import Guardrails
from .permissions import Permissions
from .policy import Policy
from .timeout import Timeout

__all__ = ["Guardrails", "Middleware", "Permissions", "Policy", "Timeout"]
