"""`Guardrails`: the layer that runs guards, and its held-back stream window."""

from agentmw.middleware.guardrails.layer import Guardrails

__all__ = ["Guardrails"]
