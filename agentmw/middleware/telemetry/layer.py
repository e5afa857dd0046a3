"""`Telemetry`: OpenTelemetry GenAI spans and metrics for sessions, turns and tool calls."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from agentmw._validate import check_bool, check_methods, check_optional_name
from agentmw.classify import exception_type
from agentmw.core.call import Call
from agentmw.core.middleware import (
    AsyncNext,
    AsyncStreamNext,
    Middleware,
    Next,
    StreamNext,
    aclose,
    close,
    stream_failure,
)
from agentmw.events import Event
from agentmw.middleware.telemetry import semconv as sc
from agentmw.middleware.telemetry.genai import end_attributes, event_attributes, start_attributes
from agentmw.middleware.telemetry.providers import Instruments, resolve
from agentmw.pricing import call_cost, table_for

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

# The agent span of each open session (the outermost Telemetry layer's), by session id, so that
# `OpenTelemetryEventSink` finds it from any thread; entries leave when the session closes.
_agent_spans: dict[str, Span] = {}
_agent_spans_lock = threading.Lock()
_TRUTHY = frozenset({"1", "true", "yes", "on", "span_only", "event_only", "span_and_event"})
_LINK_CAPACITY = 4096  # remembered session spans, for links from handoff target sessions
_RECHECK_S = 1.0  # how often a layer on unset global providers looks for them again
_END = object()  # a stream's end, from `next(chunks, _END)`
_TRACER_PROVIDER = "an OpenTelemetry TracerProvider or None"
_METER_PROVIDER = "an OpenTelemetry MeterProvider or None"


def _cost_of(call: Call) -> float | None:
    """The call's cost in USD, or None when its model has no price (cost unknown, not zero)."""
    if call.cost_usd is None and (call.model is None or not table_for(call).has(call.model)):
        return None
    return float(call_cost(call))


def agent_span(session_id: str) -> Span | None:
    """The `invoke_agent` span Telemetry opened for the open session `session_id`, if any."""
    return _agent_spans.get(session_id)


@dataclass(slots=True)
class _SessionTrace:
    span: Span
    context: Context
    trace_id: int


@dataclass(slots=True)
class _CallTrace:
    """One call's span; `with trace:` makes the span current while the call's code runs."""

    span: Span
    context: Context
    metric_attrs: dict[str, Any]
    start: float
    observer: Callable[[Event], None] | None = None
    last: Any = None  # the last streamed chunk (carries the response model, id, finish reason)
    token: Any = None

    def __enter__(self) -> None:
        self.token = otel_context.attach(self.context)

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self.token)


class Telemetry(Middleware):
    """GenAI spans (`invoke_agent`, `chat`, `execute_tool`) and metrics for every call.

    Put it outermost: one span per logical call that sees the final outcome, with retries,
    breaker rejections, rate-limit waits, fallbacks and guardrail blocks below it as span events.
    With no SDK configured (the API's no-op or proxy providers) calls take a fast path.

    Args:
        tracer_provider: where spans go (default: the global provider, looked up again once a
            second, and at each session start, until one is set).
        meter_provider: where metrics go (default: the global provider, same rule).
        provider_name: `gen_ai.provider.name` for every turn (default: `call.provider`,
            else guessed from the model name, else "unknown").
        capture_content: record prompts, responses, tool arguments and results (default: the
            `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` environment variable).
        name: the layer's name in its stack.
        kinds: the call kinds it applies to (default: turns and tools).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        provider_name: str | None = None,
        capture_content: bool | None = None,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        if tracer_provider is not None:
            check_methods("tracer_provider", tracer_provider, ("get_tracer",), _TRACER_PROVIDER)
        if meter_provider is not None:
            check_methods("meter_provider", meter_provider, ("get_meter",), _METER_PROVIDER)
        if capture_content is None:
            env = os.environ.get(sc.ENV_CAPTURE_CONTENT, "")
            capture_content = env.strip().lower() in _TRUTHY
        self.provider_name = check_optional_name("provider_name", provider_name)
        capture_content = check_bool("capture_content", capture_content)
        self.capture_content = capture_content
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._key = f"agentmw.telemetry:{self.name}"
        self._links: OrderedDict[str, SpanContext] = OrderedDict()
        self._lock = threading.Lock()
        self._recheck_at = 0.0
        self._refresh()

    # -- provider resolution (the fast path's flag) ----------------------------------------
    def _refresh(self) -> None:
        state = resolve(self._tracer_provider, self._meter_provider)
        self._tracer = state.tracer
        self._tracing = state.tracing
        self._metrics = Instruments(state.meter) if state.metering else None
        self._on = state.tracing or state.metering
        # Explicit providers never change; global ones are set once, so re-resolve only while
        # one of them is still unset.
        self._settled = state.settled
        self._recheck_at = time.monotonic() + _RECHECK_S

    def _active(self) -> bool:
        if self._on:
            return True
        if self._settled or time.monotonic() < self._recheck_at:
            return False
        self._refresh()
        return self._on

    # -- sessions --------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        if not self._settled:
            self._refresh()
        if not self._tracing:
            return
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
        span = self._tracer.start_span(
            f"{sc.OP_INVOKE_AGENT} {agent.role}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=links,
        )
        span_context = span.get_span_context()
        session.meta[self._key] = _SessionTrace(
            span, trace.set_span_in_context(span), span_context.trace_id
        )
        with _agent_spans_lock:
            _agent_spans.setdefault(session.id, span)
        with self._lock:
            self._links[session.id] = span_context
            while len(self._links) > _LINK_CAPACITY:
                self._links.popitem(last=False)

    def close_session(self, session: Session, error: BaseException | None) -> None:
        state: _SessionTrace | None = session.meta.pop(self._key, None)
        if state is None:
            return
        with _agent_spans_lock:
            if _agent_spans.get(session.id) is state.span:
                del _agent_spans[session.id]
        if error is not None:
            state.span.set_status(Status(StatusCode.ERROR))
            state.span.set_attribute(sc.ERROR_TYPE, exception_type(error))
        state.span.end()

    # -- per call --------------------------------------------------------------------------
    def _parent(self, call: Call) -> Context | None:
        session = call.session
        state: _SessionTrace | None = session.meta.get(self._key) if session is not None else None
        if state is None:
            return None  # outside a traced session: the current context
        current = trace.get_current_span().get_span_context()
        if current.is_valid and current.trace_id == state.trace_id:
            return None  # nested in a span of this session (a tool run inside a turn)
        return state.context  # explicit: works in threads and tasks without our context

    def _begin(self, call: Call) -> _CallTrace:
        span_name, kind, attrs, metric_attrs = start_attributes(
            call, self.provider_name, self.capture_content
        )
        parent = self._parent(call)
        span = self._tracer.start_span(span_name, context=parent, kind=kind, attributes=attrs)
        record = _CallTrace(span, trace.set_span_in_context(span, parent), metric_attrs, 0.0)
        record.observer = lambda event: self._on_event(record, event)
        if call.observers is None:
            call.observers = []
        call.observers.append(record.observer)
        record.start = time.perf_counter()
        return record

    def _on_event(self, record: _CallTrace, event: Event) -> None:
        record.span.add_event(event.name, attributes=event_attributes(event))
        if self._metrics is not None:
            self._metrics.on_event(event, record.metric_attrs)

    def _end(
        self, call: Call, record: _CallTrace, result: Any, error: BaseException | None
    ) -> None:
        duration = time.perf_counter() - record.start
        observers = call.observers
        if observers and record.observer in observers:
            observers.remove(record.observer)
        span = record.span
        usage = call.usage
        cost = _cost_of(call) if call.kind == "turn" else None
        error_type = exception_type(error) if error is not None else None
        if span.is_recording():
            if error_type is not None:
                span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(
                end_attributes(call, result, error_type, cost, self.capture_content)
            )
        if self._metrics is not None:
            self._metrics.on_call(record.metric_attrs, duration, error_type, usage, cost)
        span.end()

    # -- the four paths: untraced calls go straight to the next link -----------------------
    def handle(self, call: Call, call_next: Next) -> Any:
        return self._handle(call, call_next) if self._active() else call_next(call)

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return self._ahandle(call, call_next) if self._active() else call_next(call)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return self._stream(call, call_next) if self._active() else call_next(call)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return self._astream(call, call_next) if self._active() else call_next(call)

    def _handle(self, call: Call, call_next: Next) -> Any:
        record = self._begin(call)
        try:
            with record:
                result = call_next(call)
        except BaseException as exc:
            self._end(call, record, None, exc)
            raise
        self._end(call, record, result, None)
        return result

    async def _ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        record = self._begin(call)
        try:
            with record:
                result = await call_next(call)
        except BaseException as exc:
            self._end(call, record, None, exc)
            raise
        self._end(call, record, result, None)
        return result

    # The span is current only while the producer runs, never across a `yield`: the consumer's
    # code between chunks is not part of the call.
    def _stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        record = self._begin(call)
        with record:
            chunks = iter(call_next(call))
        failure: BaseException | None = None
        try:
            while True:
                with record:
                    chunk = next(chunks, _END)
                if chunk is _END:
                    return
                record.last = chunk
                yield chunk
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            close(chunks)
            self._end(call, record, record.last, failure)

    async def _astream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        record = self._begin(call)
        with record:
            agen = call_next(call)
        failure: BaseException | None = None
        try:
            while True:
                with record:
                    chunk = await anext(agen, _END)
                if chunk is _END:
                    return
                record.last = chunk
                yield chunk
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            await aclose(agen)
            self._end(call, record, record.last, failure)
