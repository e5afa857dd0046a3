"""The `invoke_agent` span of each session, opened and closed by `Telemetry`'s session hooks."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from agentmw.classify import exception_type
from agentmw.middleware.telemetry import semconv as sc

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__: list[str] = []  # internal: the OTel event sink finds session spans here

# The agent span of each open session (the outermost Telemetry layer's), by session id, so that
# `OpenTelemetryEventSink` finds it from any thread; entries leave when the session closes.
_agent_spans: dict[str, Span] = {}
_agent_spans_lock = threading.Lock()
_LINK_CAPACITY = 4096  # remembered session spans, for links from handoff target sessions


def agent_span(session_id: str) -> Span | None:
    """The `invoke_agent` span Telemetry opened for the open session `session_id`, if any."""
    return _agent_spans.get(session_id)


@dataclass(slots=True)
class SessionTrace:
    span: Span
    context: Context
    trace_id: int


class SessionSpans:
    """One layer's session spans, and the span contexts that handoff targets link to."""

    def __init__(self) -> None:
        self._links: OrderedDict[str, SpanContext] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, tracer: Tracer, session: Session) -> SessionTrace:
        agent = session.agent
        attrs: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.GEN_AI_AGENT_NAME: agent.role,
            sc.GEN_AI_AGENT_ID: session.id,
        }
        if session.thread_id is not None:
            attrs[sc.GEN_AI_CONVERSATION_ID] = session.thread_id
        links = []
        handoff = session.received_handoff
        if handoff is not None and handoff.source_session_id is not None:
            with self._lock:
                source = self._links.get(handoff.source_session_id)
            if source is not None:
                links.append(Link(source))
        span = tracer.start_span(
            f"{sc.OP_INVOKE_AGENT} {agent.role}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=links,
        )
        span_context = span.get_span_context()
        with _agent_spans_lock:
            _agent_spans.setdefault(session.id, span)
        with self._lock:
            self._links[session.id] = span_context
            while len(self._links) > _LINK_CAPACITY:
                self._links.popitem(last=False)
        return SessionTrace(span, trace.set_span_in_context(span), span_context.trace_id)

    @staticmethod
    def close(session: Session, state: SessionTrace, error: BaseException | None) -> None:
        with _agent_spans_lock:
            if _agent_spans.get(session.id) is state.span:
                del _agent_spans[session.id]
        if error is not None:
            state.span.set_status(Status(StatusCode.ERROR))
            state.span.set_attribute(sc.ERROR_TYPE, exception_type(error))
        state.span.end()
