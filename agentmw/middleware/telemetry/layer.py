"""`Telemetry`: OpenTelemetry GenAI spans and metrics for sessions, turns and tool calls."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

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
    overrides,
    stream_failure,
)
from agentmw.events import Event
from agentmw.middleware.telemetry.genai import (
    StreamSummary,
    capture_from_environment,
    end_attributes,
    event_attributes,
    start_attributes,
)
from agentmw.middleware.telemetry.providers import Instruments, resolve
from agentmw.middleware.telemetry.sessions import SessionSpans, SessionTrace
from agentmw.pricing import call_cost, table_for

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

_RECHECK_S = 1.0  # how often a layer on unset global providers looks for them again
_END = object()  # a stream's end, from `next(chunks, _END)`
_SPAN = "agentmw.telemetry.span"  # + the layer's id: the call's span, from `before` to `after`
_TRACER_PROVIDER = "an OpenTelemetry TracerProvider or None"
_METER_PROVIDER = "an OpenTelemetry MeterProvider or None"


def _cost_of(call: Call) -> float | None:
    """The call's cost in USD, or None when its model has no price (cost unknown, not zero)."""
    if call.cost_usd is None and (call.model is None or not table_for(call).has(call.model)):
        return None
    return float(call_cost(call))


@dataclass(slots=True)
class _CallTrace:
    """One call's span; `with trace:` makes the span current while the call's code runs."""

    span: Span
    context: Context
    metric_attrs: dict[str, Any]
    start: float
    observer: Callable[[Event], None] | None = None
    summary: StreamSummary | None = None  # a stream's response model, id and finish reasons
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
            capture_content = capture_from_environment()
        self.provider_name = check_optional_name("provider_name", provider_name)
        capture_content = check_bool("capture_content", capture_content)
        self.capture_content = capture_content
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._key = f"agentmw.telemetry:{self.name}"
        self._meta = f"{_SPAN}:{id(self):x}"
        self._sessions = SessionSpans()
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
        self._providers = state
        self._recheck_at = time.monotonic() + _RECHECK_S

    def _active(self) -> bool:
        if self._on:
            return True
        if self._settled or time.monotonic() < self._recheck_at:
            return False
        self._recheck_at = time.monotonic() + _RECHECK_S
        if self._providers.outdated():
            self._refresh()
        return self._on

    # -- sessions --------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        if not self._settled and self._providers.outdated():
            self._refresh()
        if self._tracing:
            session.meta[self._key] = self._sessions.open(self._tracer, session)

    def close_session(self, session: Session, error: BaseException | None) -> None:
        state: SessionTrace | None = session.meta.pop(self._key, None)
        if state is not None:
            self._sessions.close(session, state, error)

    # -- per call --------------------------------------------------------------------------
    def _parent(self, call: Call) -> Context | None:
        session = call.session
        state: SessionTrace | None = session.meta.get(self._key) if session is not None else None
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
    # Traced calls and tool runs take the base class's paths through the hooks below (the span
    # is current for the whole call); streams take `_stream`/`_astream`.
    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        # An untraced call costs one frame and a clock read between rechecks; a subclass that
        # overrides a path keeps it.
        if mode == "sync" and not overrides(self, "handle", Telemetry):
            traced = super().handle
        elif mode == "async" and not overrides(self, "ahandle", Telemetry):
            traced = super().ahandle
        else:
            return None
        monotonic = time.monotonic

        def telemetry(call: Call) -> Any:
            if self._on or (
                not self._settled and monotonic() >= self._recheck_at and self._active()
            ):
                return traced(call, call_next)
            return call_next(call)

        return telemetry

    def handle(self, call: Call, call_next: Next) -> Any:
        return super().handle(call, call_next) if self._active() else call_next(call)

    def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        return super().ahandle(call, call_next) if self._active() else call_next(call)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        return self._stream(call, call_next) if self._active() else call_next(call)

    def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        return self._astream(call, call_next) if self._active() else call_next(call)

    def before(self, call: Call) -> None:
        record = call.meta[self._meta] = self._begin(call)
        record.__enter__()

    def after(self, call: Call, result: Any) -> Any:
        record: _CallTrace = call.meta.pop(self._meta)
        record.__exit__()
        self._end(call, record, result, None)
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        record: _CallTrace = call.meta.pop(self._meta)
        record.__exit__()
        self._end(call, record, None, exc)

    # The span is current only while the producer runs, never across a `yield`: the consumer's
    # code between chunks is not part of the call.
    def _stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        record = self._begin(call)
        summary = record.summary = StreamSummary()
        with record:
            chunks = iter(call_next(call))
        failure: BaseException | None = None
        try:
            while True:
                with record:
                    chunk = next(chunks, _END)
                if chunk is _END:
                    return
                summary.observe(chunk)
                yield chunk
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            close(chunks)
            self._end(call, record, summary, failure)

    async def _astream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        record = self._begin(call)
        summary = record.summary = StreamSummary()
        with record:
            agen = call_next(call)
        failure: BaseException | None = None
        try:
            while True:
                with record:
                    chunk = await anext(agen, _END)
                if chunk is _END:
                    return
                summary.observe(chunk)
                yield chunk
        except BaseException as exc:
            failure = stream_failure(exc)
            raise
        finally:
            await aclose(agen)
            self._end(call, record, summary, failure)
