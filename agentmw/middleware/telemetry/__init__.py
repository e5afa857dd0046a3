"""`Telemetry`: OpenTelemetry GenAI spans and metrics, and the OTel event sink."""

from agentmw.middleware.telemetry.event_sink import OpenTelemetryEventSink
from agentmw.middleware.telemetry.layer import Telemetry

__all__ = ["OpenTelemetryEventSink", "Telemetry"]
