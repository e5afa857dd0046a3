"""`OpenTelemetryEventSink`: session events as span events on the session's agent span."""

from __future__ import annotations

from opentelemetry import trace

from agentmw._validate import check_bool
from agentmw.events import Event
from agentmw.middleware.telemetry.genai import capture_from_environment, event_attributes
from agentmw.middleware.telemetry.sessions import agent_span


class OpenTelemetryEventSink:
    """Adds every session event as a span event on that session's `invoke_agent` span.

    The span is the one a `Telemetry` layer in the agent's stack opened for the session. Events
    emitted while it does not exist (`agent.started` precedes the layers' session hooks) go to
    the current span instead, when that one records.
    Event attributes: `agentmw.step`, `agentmw.failure_class` and each scalar data value as
    `agentmw.<key>`; `agentmw.detail` only with content capture on (a detail can be a policy
    rule's message); never exception messages or prompt text.

    Args:
        capture_content: export each event's `detail` too (default: the
            `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` environment variable, the same
            switch as the `Telemetry` layer's).

    Example:
        `Agent("writer", stack=[Telemetry()], event_sink=OpenTelemetryEventSink())`
    """

    def __init__(self, *, capture_content: bool | None = None) -> None:
        if capture_content is None:
            capture_content = capture_from_environment()
        self.capture_content = check_bool("capture_content", capture_content)

    def emit(self, event: Event) -> None:
        """Add `event` to the agent span (or the current recording span)."""
        span = agent_span(event.session_id) if event.session_id is not None else None
        if span is None:
            span = trace.get_current_span()
        if span.is_recording():
            attributes = event_attributes(event, detail=self.capture_content)
            span.add_event(event.name, attributes=attributes)
