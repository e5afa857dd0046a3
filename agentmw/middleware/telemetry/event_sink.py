"""`OpenTelemetryEventSink`: session events as span events on the session's agent span."""

from __future__ import annotations

from opentelemetry import trace

from agentmw.events import Event
from agentmw.middleware.telemetry.genai import event_attributes
from agentmw.middleware.telemetry.sessions import agent_span


class OpenTelemetryEventSink:
    """Adds every session event as a span event on that session's `invoke_agent` span.

    The span is the one a `Telemetry` layer in the agent's stack opened for the session. Events
    emitted while it does not exist (`agent.started` precedes the layers' session hooks) go to
    the current span instead, when that one records.
    Event attributes: `agentmw.step`, `agentmw.detail`, `agentmw.failure_class` and each scalar
    data value as `agentmw.<key>`; never exception messages or prompt text.

    Example:
        `Agent("writer", stack=[Telemetry()], event_sink=OpenTelemetryEventSink())`
    """

    def emit(self, event: Event) -> None:
        """Add `event` to the agent span (or the current recording span)."""
        span = agent_span(event.session_id) if event.session_id is not None else None
        if span is None:
            span = trace.get_current_span()
        if span.is_recording():
            span.add_event(event.name, attributes=event_attributes(event))
