"""Guards for the `Guardrails` layer: the protocol, verdicts and the built-in checks.

Build them here and hand them to `agentmw.middleware.Guardrails` (or `Stack.default(guardrails=)`).
"""

from agentmw.guardrails.base import Guardrail, TextGuardrail, Verdict
from agentmw.guardrails.builtin import (
    AllowAll,
    DenyPatterns,
    MaxLength,
    OutputSchema,
    PromptInjectionGuard,
)
from agentmw.guardrails.pii import PIIRedactor

__all__ = [
    "AllowAll",
    "DenyPatterns",
    "Guardrail",
    "MaxLength",
    "OutputSchema",
    "PIIRedactor",
    "PromptInjectionGuard",
    "TextGuardrail",
    "Verdict",
]
