"""`Telemetry`: OpenTelemetry GenAI spans and metrics, and the OTel event sink."""

from agentmw.middleware.telemetry.event_sink import OpenTelemetryEventSink
from agentmw.middleware.telemetry.layer import Telemetry
from agentmw.middleware.telemetry.sessions import agent_span

__all__ = ["OpenTelemetryEventSink", "Telemetry", "agent_span"]
